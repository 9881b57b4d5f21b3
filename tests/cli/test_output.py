"""Output formats: aligned tables, List documents, names."""

from __future__ import annotations

import json

import pytest
import typer
import yaml
from cli_samples import pod

from shoal.cli.output import (
    TableStream,
    check_format,
    list_document,
    name_of,
    render_document,
    render_table,
)


def test_render_table_aligns_columns_without_trailing_blanks() -> None:
    text = render_table(["NAME", "READY"], [["web-1", "1/1"], ["a-much-longer-name", "0/1"]])
    lines = text.splitlines()
    assert lines[0] == "NAME                 READY"
    assert lines[1] == "web-1                1/1"
    assert lines[2] == "a-much-longer-name   0/1"
    assert all(line == line.rstrip() for line in lines)


def test_table_stream_widens_for_later_rows() -> None:
    stream = TableStream(["NAME", "AGE"])
    assert not stream.header_shown
    assert stream.header() == "NAME   AGE"
    assert stream.header_shown
    assert stream.line(["longer-name", "5s"]) == "longer-name   5s"
    assert stream.line(["x", "1m"]) == "x             1m"


def test_list_document_shape() -> None:
    document = list_document([pod("a"), pod("b")], revision=42)
    assert document["kind"] == "List"
    assert document["apiVersion"] == "shoal/v1"
    assert document["metadata"] == {"resourceVersion": "42"}
    assert [item["metadata"]["name"] for item in document["items"]] == ["a", "b"]
    assert json.loads(render_document(document, "json")) == document
    assert yaml.safe_load(render_document(document, "yaml")) == document


def test_name_of_objects_and_dicts() -> None:
    assert name_of(pod("web-1")) == "pod/web-1"
    assert name_of({"kind": "Deployment", "metadata": {"name": "web"}}) == "deployment/web"


def test_check_format() -> None:
    assert check_format(None) is None
    assert check_format("wide") == "wide"
    with pytest.raises(typer.BadParameter, match="wide, json, yaml, name"):
        check_format("table2")
