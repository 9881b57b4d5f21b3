"""kubectl-like table columns per kind."""

from __future__ import annotations

from datetime import timedelta

from cli_samples import NOW, deployment, event, pod

from shoal.api.node import Node
from shoal.cli.context import generic_kind
from shoal.cli.printers import node_status, pod_status, printer_for, table_headers, table_rows


def test_pod_rows_and_wide_columns() -> None:
    printer = printer_for("Pod")
    ready = pod("web-1", phase="Running", ready=True, restartCount=2, pid=4321, hostPort=31000)
    assert table_headers(printer, wide=False, all_namespaces=False) == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
    ]
    assert table_rows(printer, [ready], NOW) == [["web-1", "1/1", "Running", "2", "90s"]]
    assert table_rows(printer, [ready], NOW, wide=True)[0][5:] == ["node-1", "4321", "31000"]
    assert table_rows(printer, [ready], NOW, all_namespaces=True)[0][0] == "default"


def test_pod_status_prefers_terminating_then_reason() -> None:
    crashing = pod(phase="Running", ready=False, reason="CrashLoopBackOff")
    assert pod_status(crashing) == "CrashLoopBackOff"
    deleting = pod(phase="Running", ready=True)
    deleting.metadata.deletion_timestamp = NOW
    assert pod_status(deleting) == "Terminating"
    assert pod_status(pod()) == "Pending"


def test_deployment_row() -> None:
    obj = deployment(status={"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2})
    assert table_rows(printer_for("Deployment"), [obj], NOW) == [["web", "2/3", "3", "2", "5m"]]
    wide = table_rows(printer_for("Deployment"), [obj], NOW, wide=True)[0]
    assert wide[5:] == ["RollingUpdate", "app=web"]


def test_rows_sorted_by_name_and_events_by_time() -> None:
    rows = table_rows(printer_for("Pod"), [pod("b"), pod("a")], NOW)
    assert [row[0] for row in rows] == ["a", "b"]
    events = [event("Later", 10), event("Earlier", 100)]
    rows = table_rows(printer_for("Event"), events, NOW)
    assert [row[2] for row in rows] == ["Earlier", "Later"]
    assert rows[0] == ["100s", "Normal", "Earlier", "deployment/web", "Earlier happened"]


def test_node_status_from_ready_condition() -> None:
    node = Node.new("n1")
    assert node_status(node) == "Unknown"
    node = Node.from_json(
        {
            **node.to_json(),
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }
    )
    assert node_status(node) == "Ready,SchedulingDisabled"


def test_unknown_kinds_get_name_and_age() -> None:
    cls = generic_kind("widgets")
    obj = cls.from_json(
        {
            "apiVersion": "shoal/v1",
            "kind": "Widget",
            "metadata": {"name": "w1", "creationTimestamp": (NOW - timedelta(hours=2)).isoformat()},
            "spec": {"size": 3},
        }
    )
    printer = printer_for("Widget")
    assert table_headers(printer, wide=True, all_namespaces=False) == ["NAME", "AGE"]
    assert table_rows(printer, [obj], NOW) == [["w1", "120m"]]
