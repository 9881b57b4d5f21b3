"""kubectl-like table columns per kind."""

from __future__ import annotations

from datetime import timedelta

from cli_samples import NOW, deployment, event, pod

from shoal.api.analysis import AnalysisRun
from shoal.api.diffreport import DiffReport
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


def analysis_run(name: str, status: dict[str, object]) -> AnalysisRun:
    envoy = {"envoy": {"metric": "successRate"}}
    created = (NOW - timedelta(seconds=40)).isoformat()
    return AnalysisRun.from_json(
        {
            "kind": "AnalysisRun",
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {
                "metrics": [
                    {"name": "success-rate", "count": 3, "provider": envoy},
                    {"name": "smoke", "provider": {"exec": {"command": ["true"]}}},
                ],
                "args": [{"name": "deployment", "value": "web"},
                         {"name": "canary-hash", "value": "7dzq2"}],
            },
            "status": status,
        }
    )  # fmt: skip


def test_analysis_runs_show_verdict_deployment_step_and_metrics() -> None:
    printer = printer_for("AnalysisRun")
    assert table_headers(printer, wide=False, all_namespaces=False) == [
        "NAME", "PHASE", "DEPLOYMENT", "REVISION", "STEP", "METRICS", "AGE",
    ]  # fmt: skip
    measured = {"phase": "Successful", "finishedAt": "2026-01-01T00:00:00Z", "value": "0.998"}
    status = {
        "phase": "Running",
        "startedAt": (NOW - timedelta(seconds=30)).isoformat(),
        "metricResults": [
            {"name": "success-rate", "phase": "Running", "count": 2, "successful": 1,
             "failed": 1, "measurements": [{**measured, "startedAt": "2026-01-01T00:00:00Z"}]},
        ],
    }  # fmt: skip
    [row] = table_rows(printer, [analysis_run("web-7dzq2-3", status)], NOW, wide=True)
    assert row[:6] == [
        "web-7dzq2-3", "Running", "web", "7dzq2", "3",
        "success-rate 2/3 running (1 failed), smoke 0/1 pending",
    ]  # fmt: skip
    assert row[6] == "40s" and row[7] == "30s" and row[8] == "success-rate=0.998"
    done = {
        "phase": "Successful",
        "metricResults": [
            {"name": "success-rate", "phase": "Successful", "count": 3, "successful": 3},
            {"name": "smoke", "phase": "Successful", "count": 1, "successful": 1},
        ],
    }
    [row] = table_rows(printer, [analysis_run("web-7dzq2-pre-2", done)], NOW)
    assert row[1] == "Successful" and row[4] == "pre-promotion (retry 2)"
    assert row[5] == "success-rate 3/3 ok, smoke 1/1 ok"
    assert table_rows(printer, [analysis_run("handmade", {})], NOW)[0][4] == "<none>"
    long = {**measured, "startedAt": "2026-01-01T00:00:00Z", "value": '{"products": ' + "x" * 99}
    status["metricResults"] = [{"name": "smoke", "count": 1, "measurements": [long]}]
    wide = table_rows(printer, [analysis_run("web-7dzq2-3", status)], NOW, wide=True)[0]
    assert wide[8] == 'smoke={"products": ' + "x" * 24 + "..."  # the value cut to 40


def test_diff_reports_show_their_tallies() -> None:
    report = DiffReport.from_json(
        {
            "kind": "DiffReport",
            "metadata": {"name": "web-7dzq2", "creationTimestamp": NOW.isoformat()},
            "spec": {"deployment": "web", "candidateRevision": "7dzq2", "primaryRevision": "k5s9x"},
            "status": {"compared": 400, "differing": 3, "diffRate": 0.0075, "noisy": 9,
                       "endpoints": [{"endpoint": "GET /orders/{id}", "fields": [
                           {"path": "items[*].price", "count": 3}]}]},
        }
    )  # fmt: skip
    [row] = table_rows(printer_for("DiffReport"), [report], NOW, wide=True)
    assert row == [
        "web-7dzq2", "web", "7dzq2", "400", "3", "0.75%", "0s",
        "k5s9x", "9", "0", "0", "GET /orders/{id} items[*].price (3)",
    ]  # fmt: skip
