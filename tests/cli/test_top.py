"""`shoal top`: the table rows from usage documents (pure), and the options it refuses."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from shoal.cli.main import app
from shoal.cli.top import mebibytes, node_rows, pod_headers, pod_rows, share

MI = 2**20


def pod_item(name: str, cpu: int | None, memory: int, limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop"},
        "usage": {"cpuMillis": cpu, "memoryBytes": memory, "pids": 3},
        "limits": {"cpuMillis": None, "memoryBytes": None, "pids": None, **limits},
    }


def test_shares_and_sizes() -> None:
    assert share(None, 10) == "-" and share(1, 0) == "-" and share(1, None) == "-"
    assert share(5, 1000) == "0.5%" and share(250, 500) == "50%"
    assert mebibytes(None) == "-" and mebibytes(64 * MI) == "64Mi"
    assert mebibytes(12 * 1024 * MI) == "12.0Gi"


def test_pod_rows_show_shares_of_the_limits_and_sort() -> None:
    items = [
        pod_item("web", 250, 32 * MI, {"cpuMillis": 500, "memoryBytes": 64 * MI, "pids": 64}),
        pod_item("api", None, 100 * MI, {}),
    ]
    assert pod_rows(items, False, None) == [
        ["api", "-", "-", "100Mi", "-", "3"],
        ["web", "250m", "50%", "32Mi", "50%", "3/64"],
    ]
    assert [row[0] for row in pod_rows(items, False, "cpu")] == ["web", "api"]
    assert [row[1] for row in pod_rows(items, True, "memory")] == ["api", "web"]
    assert pod_headers(True)[0] == "NAMESPACE"


def test_node_rows_show_usage_and_requests() -> None:
    base = {
        "metadata": {"name": "n1"},
        "allocatable": {"cpuMillis": 2000, "memoryBytes": 1024 * MI, "pods": 10},
        "requested": {"cpuMillis": 500, "memoryBytes": 256 * MI, "pods": 2},
    }
    usage = {"cpuMillis": 1000, "cpus": 2, "memoryBytes": 512 * MI, "memoryTotalBytes": 2048 * MI}
    [row] = node_rows([{**base, "usage": usage}])
    assert row == [
        "n1", "1000m", "50%", "512Mi", "25%", "2/10", "cpu 500m (25%), memory 256Mi (25%)",
    ]  # fmt: skip
    [unknown] = node_rows([{**base, "usage": None}])
    assert unknown[1:5] == ["<unknown>"] * 4


def test_bad_options_are_refused_before_any_request() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--server", "http://127.0.0.1:9", "top", "pods", "--sort-by", "x"])
    assert result.exit_code != 0 and "cpu" in result.output
    result = runner.invoke(app, ["--server", "http://127.0.0.1:9", "top", "nodes", "-o", "yaml"])
    assert result.exit_code != 0 and "json" in result.output
