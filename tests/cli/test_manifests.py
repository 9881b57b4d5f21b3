"""Loading manifests: files, sorted directories, stdin, List documents, error locations."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from shoal.cli.manifests import (
    ManifestError,
    load_manifests,
    locate_field,
    parse_documents,
    with_namespace,
)

DEPLOYMENT = """
apiVersion: shoal/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 1}
"""
SERVICE = """
apiVersion: shoal/v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {port: 8080, selector: {app: web}}
"""
NODE = "apiVersion: shoal/v1\nkind: Node\nmetadata: {name: n1}\n"


def test_multi_document_file_skips_empty_documents(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(DEPLOYMENT + "---\n---\n" + SERVICE)
    manifests = load_manifests([str(path)])
    assert [m.ref for m in manifests] == ["deployment/web", "service/web"]
    assert [m.index for m in manifests] == [1, 3]


def test_directory_is_read_sorted_and_recursively_only_with_flag(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(SERVICE)
    (tmp_path / "a.yml").write_text(DEPLOYMENT)
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.json").write_text(
        '{"apiVersion": "shoal/v1", "kind": "Node", "metadata": {"name": "n1"}}'
    )
    flat = load_manifests([str(tmp_path)])
    assert [m.ref for m in flat] == ["deployment/web", "service/web"]
    deep = load_manifests([str(tmp_path)], recursive=True)
    assert [m.ref for m in deep] == ["deployment/web", "service/web", "node/n1"]


def test_stdin_and_list_documents() -> None:
    stdin = io.StringIO(
        "kind: List\nitems:\n  - kind: Pod\n    metadata: {name: a}\n"
        "  - kind: Pod\n    metadata: {name: b}\n"
    )
    manifests = load_manifests(["-"], stdin=stdin)
    assert [m.ref for m in manifests] == ["pod/a", "pod/b"]
    assert manifests[0].file == "<stdin>"


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_manifests([str(tmp_path / "missing.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Pod\n  metadata: [\n")
    with pytest.raises(ManifestError, match=r"bad\.yaml: invalid YAML"):
        load_manifests([str(bad)])
    with pytest.raises(ManifestError, match=r"x\.yaml \(document 2\): expected a mapping"):
        parse_documents("kind: Pod\n---\n- a list\n", "x.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("---\n")
    with pytest.raises(ManifestError, match="no objects found"):
        load_manifests([str(empty)])


def test_with_namespace_fills_namespaced_kinds_only() -> None:
    manifests = parse_documents(DEPLOYMENT + "---\n" + SERVICE + "---\n" + NODE, "f.yaml")
    docs = with_namespace(manifests, "dev", explicit=False)
    assert docs[0]["metadata"]["namespace"] == "dev"
    assert docs[1]["metadata"]["namespace"] == "shop"  # the file's own choice wins
    assert "namespace" not in docs[2]["metadata"]  # Node is cluster-scoped
    assert "namespace" not in manifests[0].doc["metadata"]  # the loaded document is not edited


def test_explicit_namespace_conflicting_with_the_file_is_an_error() -> None:
    manifests = parse_documents(SERVICE, "svc.yaml")
    with pytest.raises(ManifestError, match="does not match --namespace"):
        with_namespace(manifests, "dev", explicit=True)


def test_locate_field_maps_apply_items_to_documents() -> None:
    manifests = parse_documents(DEPLOYMENT + "---\n" + SERVICE, "app.yaml")
    assert locate_field("items[1].spec.port", manifests) == (
        "app.yaml (document 2, service/web): spec.port"
    )
    assert locate_field("items[7].spec", manifests) == "items[7].spec"
    assert locate_field("spec.replicas", manifests) == "spec.replicas"
