"""`print_diffs`: the DiffReport tables `shoal rollout diffs` prints."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from shoal.api.diffreport import DiffReport
from shoal.cli.diffs import endpoint_rows, field_rows, print_diffs


def report_json(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "DiffReport",
        "metadata": {"name": "shop-cand1"},
        "spec": {"deployment": "shop", "candidateRevision": "cand1"},
        "status": status,
    }


EXAMPLE = {
    "request": "GET /items/3",
    "path": "items[3].price",
    "primary": "19.99",
    "candidate": "20.0",
    "primaryStatus": 200,
    "candidateStatus": 200,
    "primaryBody": '{"items": [..., {"price": 19.99}]}',
    "candidateBody": '{"items": [..., {"price": 20.0}]}',
}
STATUS: dict[str, Any] = {
    "compared": 60,
    "differing": 40,
    "noisy": 20,
    "diffRate": 40 / 60,
    "endpoints": [
        {
            "endpoint": "GET /healthz",
            "compared": 20,
            "noisy": 20,
            "noise": [{"path": "requestId", "count": 20}],
        },
        {
            "endpoint": "GET /items/{id}",
            "compared": 40,
            "differing": 40,
            "fields": [{"path": "items[*].price", "count": 40, "example": EXAMPLE}],
            "noise": [{"path": "requestId", "count": 40}],
        },
    ],
}


def printed(document: dict[str, Any], **options: Any) -> str:
    buffer = io.StringIO()
    print_diffs(document, Console(file=buffer, width=200, highlight=False), **options)
    return buffer.getvalue()


def test_endpoint_rows_most_differing_first() -> None:
    status = DiffReport.from_json(report_json(**STATUS)).status
    assert endpoint_rows(status) == [
        ["GET /items/{id}", "40", "40", "100.0%", "0", "items[*].price (40)"],
        ["GET /healthz", "20", "0", "0.0%", "20", "-"],
    ]


def test_field_rows_show_the_example_and_its_concrete_path() -> None:
    status = DiffReport.from_json(report_json(**STATUS)).status
    assert field_rows(status) == [
        [
            "GET /items/{id}",
            "items[*].price",
            "40",
            "19.99",
            "20.0",
            "GET /items/3  (at items[3].price)",
        ]
    ]


def test_print_diffs_prints_summary_tables_and_noise() -> None:
    text = printed(report_json(**STATUS))
    assert "diffreport/shop-cand1: deployment/shop, candidate cand1" in text
    assert "compared 60, differing 40 (66.7%), noisy 20" in text
    assert "items[*].price" in text  # not swallowed as rich markup
    assert "GET /items/3  (at items[3].price)" in text
    assert "GET /items/{id}: requestId (40)" in text
    assert "19.99" in text and "20.0" in text
    assert '{"price": 19.99}' not in text


def test_bodies_on_request() -> None:
    assert '{"price": 19.99}' in printed(report_json(**STATUS), bodies=True)


def test_an_empty_report() -> None:
    text = printed(report_json())
    assert "No samples compared yet." in text and "ENDPOINT" not in text
