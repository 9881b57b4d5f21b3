"""The xDS file writer without Envoy: phases in make-before-break order, monotonic versions,
no rewrite of unchanged files, DiscoveryResponse documents, recovery after a restart, cleanup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shoal.agent.envoy import (
    Destination,
    Endpoint,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
    XdsWriter,
)
from shoal.agent.envoy.writer import XdsFile


def table(clusters: dict[str, int], listeners: dict[str, tuple[int, str]]) -> RoutingTable:
    return RoutingTable(
        tuple(
            ServiceListener(name, port, (Route(Destination.single(target)),))
            for name, (port, target) in listeners.items()
        ),
        tuple(UpstreamCluster(c, (Endpoint("127.0.0.1", p),)) for c, p in clusters.items()),
    )


def describe(phases: list[list[XdsFile]]) -> list[list[str]]:
    return [[f"{f.kind}:{f.name}" if f.name else f.kind for f in phase] for phase in phases]


def read(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_first_apply_writes_endpoints_clusters_then_routes_listeners(tmp_path: Path) -> None:
    writer = XdsWriter(tmp_path)
    phases = writer.plan(table({"a": 1}, {"l": (80, "a")}))
    assert describe(phases) == [["eds:a", "cds"], ["rds:l", "lds"]]


def test_switch_adds_before_it_removes(tmp_path: Path) -> None:
    writer = XdsWriter(tmp_path)
    writer.apply(table({"v1": 1}, {"l": (80, "v1")}))
    phases = writer.plan(table({"v2": 2}, {"l": (80, "v2")}))
    assert describe(phases) == [["eds:v2", "cds"], ["rds:l"], ["cds"]]
    union, final = phases[0][1], phases[2][0]
    assert [c["name"] for c in union.resources] == ["v1", "v2"]  # old kept while routes move
    assert [c["name"] for c in final.resources] == ["v2"]


def test_unchanged_table_writes_nothing_and_endpoint_change_only_eds(tmp_path: Path) -> None:
    writer = XdsWriter(tmp_path)
    writer.apply(table({"a": 1}, {"l": (80, "a")}))
    assert writer.apply(table({"a": 1}, {"l": (80, "a")})).is_empty()
    changed = writer.apply(table({"a": 2}, {"l": (80, "a")}))
    assert changed.eds == {"a": "2"} and changed.cds is None and changed.lds is None


def test_versions_are_monotonic_per_file_and_files_are_discovery_responses(tmp_path: Path) -> None:
    writer = XdsWriter(tmp_path)
    first = writer.apply(table({"a": 1}, {"l": (80, "a")}))
    second = writer.apply(table({"a": 1, "b": 2}, {"l": (80, "b")}))
    third = writer.apply(table({"b": 2}, {"l": (80, "b")}))
    assert first.cds is not None and second.cds is not None and third.cds is not None
    assert int(first.cds) < int(second.cds) < int(third.cds)
    cds = read(writer.path("cds"))
    assert cds["version_info"] == third.cds
    assert [r["name"] for r in cds["resources"]] == ["b"]
    eds = read(writer.path("eds", "b"))
    assert eds["version_info"] == "1"
    assert eds["resources"][0]["@type"].endswith("ClusterLoadAssignment")
    assert not list(tmp_path.rglob(".*.tmp"))  # temp files were all renamed


def test_versions_and_state_survive_a_restart(tmp_path: Path) -> None:
    XdsWriter(tmp_path).apply(table({"a": 1}, {"l": (80, "a")}))
    again = XdsWriter(tmp_path)
    assert again.apply(table({"a": 1}, {"l": (80, "a")})).is_empty()
    moved = again.apply(table({"b": 1}, {"l": (80, "b")}))
    assert moved.eds == {"b": "1"} and moved.rds == {"l": "2"}
    assert moved.cds == "3"  # 1: first apply, 2: a+b, 3: b


def test_unused_files_are_removed_on_the_next_apply(tmp_path: Path) -> None:
    writer = XdsWriter(tmp_path)
    writer.apply(table({"a": 1}, {"l": (80, "a"), "m": (81, "a")}))
    writer.apply(table({"b": 1}, {"l": (80, "b")}))
    assert writer.path("eds", "a").exists()  # Envoy may still read it during this apply
    writer.apply(table({"b": 1}, {"l": (80, "b")}))
    assert not writer.path("eds", "a").exists()
    assert not writer.path("rds", "m").exists()
    assert writer.path("eds", "b").exists() and writer.path("rds", "l").exists()


def test_bootstrap_points_at_existing_files(tmp_path: Path) -> None:
    writer = XdsWriter(tmp_path)
    bootstrap = read(writer.write_bootstrap(node_id="n", node_cluster="c", admin_port=9))
    for key in ("lds_config", "cds_config"):
        path = Path(bootstrap["dynamic_resources"][key]["path_config_source"]["path"])
        assert read(path) == {"resources": [], "version_info": "1"}
