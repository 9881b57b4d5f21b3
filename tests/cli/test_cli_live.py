"""The `shoal` CLI against a real `shoal server --no-agent` in a child process.

Each test works in its own namespace. Pods are not run (no agent here); where a rollout must
finish, the test marks pods ready through the status API, as the agent would.
"""

from __future__ import annotations

import io
import json
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from cli_runner import Shoal
from cli_samples import deployment_doc
from rich.console import Console

from shoal.api.deployment import Deployment
from shoal.api.diffreport import DiffReport, DiffReportSpec
from shoal.api.meta import Condition
from shoal.api.node import Node, NodeStatus
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet
from shoal.cli.progress import wait_for_rollouts
from shoal.client import Client

pytestmark = pytest.mark.e2e
T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll until `check` returns something truthy (a generous timeout, not a timing goal)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.1)


def write(path: Path, *docs: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def service_doc(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"port": 18080, "selector": {"app": name}},
    }


def versioned(version: str, replicas: int = 2) -> dict[str, Any]:
    doc = deployment_doc(replicas=replicas)
    doc["spec"]["template"]["spec"]["env"] = [{"name": "VERSION", "value": version}]
    return doc


def test_apply_get_and_unchanged(shoal: Shoal, namespace: str, tmp_path: Path) -> None:
    manifest = write(tmp_path / "app.yaml", deployment_doc(), service_doc())
    code, out = shoal("apply", "-f", manifest, "-n", namespace)
    assert code == 0, out
    assert out.splitlines() == ["deployment/web created", "service/web created"]
    code, out = shoal("apply", "-f", manifest, "-n", namespace)
    assert out.splitlines() == ["deployment/web unchanged", "service/web unchanged"]

    code, out = shoal("get", "deployments", "-n", namespace, "-o", "json")
    assert code == 0, out
    listing = json.loads(out)
    assert listing["kind"] == "List" and listing["apiVersion"] == "shoal/v1"
    assert [item["metadata"]["name"] for item in listing["items"]] == ["web"]
    code, out = shoal("get", "deploy/web", "-n", namespace, "-o", "yaml")
    assert yaml.safe_load(out)["spec"]["replicas"] == 3
    code, out = shoal("get", "deploy", "-n", namespace)
    assert out.splitlines()[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert out.splitlines()[1].split()[:2] == ["web", "0/3"]
    code, out = shoal("get", "svc", "-A", "-o", "name")
    assert "service/web" in out.splitlines()
    assert shoal("get", "deploy", "-l", "app=web", "-n", namespace, "-o", "name")[1].split() == [
        "deployment/web"
    ]
    assert "No resources found" in shoal("get", "deploy", "-l", "app in (x,y)", "-n", namespace)[1]


def test_bad_manifest_names_every_field_and_stores_nothing(
    shoal: Shoal, namespace: str, tmp_path: Path
) -> None:
    negative = deployment_doc("negative", replicas=-1)
    unknown = deployment_doc("unknown")
    unknown["spec"]["template"]["spec"]["bogus"] = True
    no_selector = deployment_doc("noselector")
    del no_selector["spec"]["selector"]
    mismatch = deployment_doc("mismatch")
    mismatch["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    manifest = write(
        tmp_path / "bad.yaml", deployment_doc("good"), negative, unknown, no_selector, mismatch
    )
    code, out = shoal("apply", "-f", manifest, "-n", namespace)
    assert code != 0
    assert "Traceback" not in out
    assert "(document 2, deployment/negative): spec.replicas" in out
    assert "(document 3, deployment/unknown): spec.template.spec.bogus: unknown field" in out
    assert "(document 4, deployment/noselector): spec.selector" in out
    assert "(document 5, deployment/mismatch): spec" in out
    assert "does not match template.metadata.labels" in out
    code, out = shoal("get", "deployments", "-n", namespace, "-o", "json")
    assert json.loads(out)["items"] == []  # not even the good one


def test_dry_run_stores_nothing(shoal: Shoal, namespace: str, tmp_path: Path) -> None:
    manifest = write(tmp_path / "app.yaml", deployment_doc())
    code, out = shoal("apply", "-f", manifest, "-n", namespace, "--dry-run")
    assert (code, out.strip()) == (0, "deployment/web created (dry run)")
    code, out = shoal("get", "deployment", "web", "-n", namespace)
    assert code == 1 and "not found" in out


def test_apply_from_stdin(shoal: Shoal, namespace: str) -> None:
    code, out = shoal(
        "apply", "-f", "-", "-n", namespace, stdin=yaml.safe_dump(deployment_doc("from-stdin"))
    )
    assert (code, out.strip()) == (0, "deployment/from-stdin created")


def test_diff_exit_codes(shoal: Shoal, namespace: str, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    write(manifest, deployment_doc(replicas=3))
    code, out = shoal("diff", "-f", str(manifest), "-n", namespace)
    assert code == 1, out  # a new object is all additions
    assert "+++ applied/deployment/web" in out and "+  replicas: 3" in out
    shoal("apply", "-f", str(manifest), "-n", namespace)
    code, out = shoal("diff", "-f", str(manifest), "-n", namespace)
    assert (code, out) == (0, "")
    write(manifest, deployment_doc(replicas=5))
    code, out = shoal("diff", "-f", str(manifest), "-n", namespace)
    assert code == 1
    assert "-  replicas: 3" in out and "+  replicas: 5" in out
    write(manifest, deployment_doc(replicas=-5))
    code, out = shoal("diff", "-f", str(manifest), "-n", namespace)
    assert code == 2 and "spec.replicas" in out


def test_scale(shoal: Shoal, namespace: str, tmp_path: Path, server_url: str) -> None:
    shoal("apply", "-f", write(tmp_path / "app.yaml", deployment_doc()), "-n", namespace)
    code, out = shoal("scale", "deployment/web", "--replicas", "5", "-n", namespace)
    assert (code, out.strip()) == (0, "deployment/web scaled to 5")
    with Client(server_url) as client:
        assert client.get(Deployment, "web", namespace).spec.replicas == 5
    code, out = shoal("scale", "service/web", "--replicas", "2", "-n", namespace)
    assert code != 0 and "only deployments and replicasets" in out
    code, out = shoal("scale", "deployment/missing", "--replicas", "2", "-n", namespace)
    assert code == 1 and "not found" in out


def _revisions(client: Client, namespace: str) -> dict[int, ReplicaSet]:
    sets = client.list(ReplicaSet, namespace).items
    return {
        int(rs.metadata.annotations.get("deployment.shoal.dev/revision", "0")): rs for rs in sets
    }


def test_rollout_history_and_undo(
    shoal: Shoal, namespace: str, tmp_path: Path, server_url: str
) -> None:
    manifest = tmp_path / "app.yaml"
    annotated = versioned("1")
    annotated["metadata"]["annotations"] = {"kubernetes.io/change-cause": "first version"}
    shoal("apply", "-f", write(manifest, annotated), "-n", namespace)
    with Client(server_url) as client:
        eventually(lambda: 1 in _revisions(client, namespace))
        shoal("apply", "-f", write(manifest, versioned("2")), "-n", namespace)
        eventually(lambda: 2 in _revisions(client, namespace))

        code, out = shoal("rollout", "history", "deployment/web", "-n", namespace)
        assert code == 0, out
        rows = [line.split() for line in out.splitlines()[2:]]
        assert [row[0] for row in rows] == ["1", "2"]
        assert "first version" in out
        code, out = shoal(
            "rollout", "history", "deployment", "web", "--revision", "1", "-n", namespace
        )
        assert code == 0 and "value: '1'" in out

        code, out = shoal("rollout", "undo", "deployment/web", "-n", namespace)
        assert (code, out.strip()) == (0, "deployment/web rolled back")
        env = client.get(Deployment, "web", namespace).spec.template.spec.env
        assert [(e.name, e.value) for e in env] == [("VERSION", "1")]
        eventually(lambda: 3 in _revisions(client, namespace))

    code, out = shoal("rollout", "undo", "deployment/web", "--to-revision", "9", "-n", namespace)
    assert code == 1 and "no revision 9" in out


def test_pause_resume_restart(
    shoal: Shoal, namespace: str, tmp_path: Path, server_url: str
) -> None:
    shoal("apply", "-f", write(tmp_path / "app.yaml", deployment_doc()), "-n", namespace)
    assert shoal("rollout", "pause", "deployment/web", "-n", namespace)[1].strip() == (
        "deployment/web paused"
    )
    assert "already paused" in shoal("rollout", "pause", "deployment/web", "-n", namespace)[1]
    with Client(server_url) as client:
        assert client.get(Deployment, "web", namespace).spec.paused
        shoal("rollout", "resume", "deployment/web", "-n", namespace)
        assert not client.get(Deployment, "web", namespace).spec.paused
        code, out = shoal("rollout", "restart", "deployment/web", "-n", namespace)
        assert code == 0, out
        annotations = client.get(Deployment, "web", namespace).spec.template.metadata.annotations
        assert "shoal.dev/restartedAt" in annotations


def _mark_pods_ready(client: Client, namespace: str) -> bool:
    """Play the agent: every pod Running and Ready. True once there is at least one pod."""
    pods = client.list(Pod, namespace).items
    for pod in pods:
        if pod.status.ready:
            continue
        pod.status.phase = "Running"
        pod.status.ready = True
        pod.status.conditions = [Condition(type="Ready", status="True")]
        try:
            client.update_status(pod)
        except Exception:  # a conflict or a pod just deleted: the next round retries
            continue
    return bool(pods)


def test_rollout_status_completes_and_times_out(
    shoal: Shoal, namespace: str, tmp_path: Path, server_url: str
) -> None:
    shoal("apply", "-f", write(tmp_path / "app.yaml", deployment_doc(replicas=2)), "-n", namespace)
    code, out = shoal("rollout", "status", "deployment/web", "--timeout", "1s", "-n", namespace)
    assert code == 1 and "timed out after 1s" in out
    with Client(server_url) as client:
        eventually(
            lambda: (
                _mark_pods_ready(client, namespace)
                and len(client.list(Pod, namespace).items) == 2
                and all(p.status.ready for p in client.list(Pod, namespace).items)
            )
        )
    code, out = shoal("rollout", "status", "deployment/web", "--timeout", "30s", "-n", namespace)
    assert code == 0, out
    assert out.splitlines()[-1] == 'deployment "web" successfully rolled out'
    # On a terminal the same wait draws a live progress bar and ends with the verdict.
    screen = io.StringIO()
    wait_for_rollouts(
        server_url, namespace, ["web"], 30, Console(file=screen, force_terminal=True, width=120)
    )
    assert "deployment/web" in screen.getvalue()
    assert 'deployment "web" successfully rolled out' in screen.getvalue()


def test_describe_and_events(shoal: Shoal, namespace: str, tmp_path: Path) -> None:
    shoal("apply", "-f", write(tmp_path / "app.yaml", deployment_doc()), "-n", namespace)
    eventually(lambda: "ScalingReplicaSet" in shoal("events", "-n", namespace)[1])
    code, out = shoal("describe", "deployment", "web", "-n", namespace)
    assert code == 0, out
    assert "Replicas:" in out and "3 desired" in out
    assert "ScalingReplicaSet" in out  # the Events section
    assert "ReplicaSets:" in out and "web-" in out.split("ReplicaSets:")[1]
    code, out = shoal("events", "-n", namespace, "--for", "deployment/web")
    assert code == 0 and "deployment/web" in out
    code, out = shoal("events", "-n", namespace, "--for", "deployment/nothing")
    assert "No resources found" in out


def test_delete(shoal: Shoal, namespace: str, tmp_path: Path) -> None:
    manifest = write(tmp_path / "app.yaml", deployment_doc(), service_doc())
    shoal("apply", "-f", manifest, "-n", namespace)
    code, out = shoal("delete", "service", "web", "-n", namespace)
    assert (code, out.strip()) == (0, "service/web deleted")
    code, out = shoal("delete", "service/web", "-n", namespace)
    assert code == 1 and "not found" in out
    assert shoal("delete", "svc/web", "--ignore-not-found", "-n", namespace)[0] == 0
    code, out = shoal("delete", "-f", manifest, "--ignore-not-found", "-n", namespace)
    assert (code, out.strip()) == (0, "deployment/web deleted")


def test_unknown_kind_and_version(shoal: Shoal) -> None:
    code, out = shoal("get", "widgets")
    assert code == 1 and "does not serve kind 'widgets'" in out
    code, out = shoal("version")
    assert code == 0
    assert out.splitlines()[:2] == ["Client Version: 0.1.0", "Server Version: 0.1.0"]


def test_logs_report_clearly(shoal: Shoal, namespace: str) -> None:
    code, out = shoal("logs", "no-such-pod", "-n", namespace)
    assert code == 1 and "not found" in out and "Traceback" not in out


def test_get_several_kinds(shoal: Shoal, namespace: str, tmp_path: Path) -> None:
    shoal(
        "apply",
        "-f",
        write(tmp_path / "app.yaml", deployment_doc(), service_doc()),
        "-n",
        namespace,
    )
    code, out = shoal("get", "deploy,svc", "-n", namespace)
    assert code == 0, out
    headers = [line.split()[:2] for line in out.splitlines() if line.startswith("NAME")]
    assert headers == [["NAME", "READY"], ["NAME", "PORT"]]
    code, out = shoal("get", "deploy,svc", "-n", namespace, "-o", "json")
    assert [item["kind"] for item in json.loads(out)["items"]] == ["Deployment", "Service"]


def test_get_watch_streams_changes(
    shoal: Shoal, namespace: str, tmp_path: Path, server_url: str
) -> None:
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoal.cli.main",
            "--server",
            server_url,
            "get",
            "deployments",
            "-w",
            "-n",
            namespace,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.0)  # let the watcher list and start watching; a late start still passes
        shoal(
            "apply", "-f", write(tmp_path / "app.yaml", deployment_doc("watched")), "-n", namespace
        )
        assert watcher.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 20
        while not any(line.startswith("watched ") for line in lines):
            ready, _, _ = select.select([watcher.stdout], [], [], 0.5)
            if ready:
                lines.append(watcher.stdout.readline())
            assert time.monotonic() < deadline, f"no row for the new deployment: {lines}"
        assert any(line.startswith("NAME ") for line in lines)
    finally:
        watcher.terminate()  # by pid
        watcher.wait(timeout=10)


def test_apply_wait_follows_the_rollout(
    shoal: Shoal, namespace: str, tmp_path: Path, server_url: str
) -> None:
    stop = threading.Event()

    def agent() -> None:
        with Client(server_url) as client:
            while not stop.is_set():
                _mark_pods_ready(client, namespace)
                time.sleep(0.2)

    helper = threading.Thread(target=agent)
    helper.start()
    try:
        code, out = shoal(
            "apply",
            "-f",
            write(tmp_path / "app.yaml", deployment_doc(replicas=2)),
            "-n",
            namespace,
            "--wait",
            "--timeout",
            "30s",
        )
    finally:
        stop.set()
        helper.join(timeout=10)
    assert code == 0, out
    assert out.splitlines()[0] == "deployment/web created"
    assert out.splitlines()[-1] == 'deployment "web" successfully rolled out'


def test_cluster_scoped_nodes(shoal: Shoal, server_url: str) -> None:
    with Client(server_url) as client:
        client.create(Node.new("cli-node", status=NodeStatus(agent_version="0.1.0")))
    code, out = shoal("get", "nodes", "-n", "ignored-for-nodes")
    assert code == 0, out
    row = next(line.split() for line in out.splitlines() if line.startswith("cli-node"))
    assert row[1] == "Unknown" and row[-1] == "0.1.0"
    code, out = shoal("describe", "no/cli-node")
    assert code == 0, out
    assert "Namespace:" not in out and "Capacity:" in out
    assert shoal("delete", "node", "cli-node")[1].strip() == "node/cli-node deleted"


def test_rollout_status_fails_on_progress_deadline(
    shoal: Shoal, namespace: str, tmp_path: Path
) -> None:
    stuck = deployment_doc(replicas=1, progressDeadlineSeconds=1)
    shoal("apply", "-f", write(tmp_path / "app.yaml", stuck), "-n", namespace)
    code, out = shoal("rollout", "status", "deployment/web", "--timeout", "60s", "-n", namespace)
    assert code == 1
    assert 'deployment "web" exceeded its progress deadline' in out


def test_rollout_diffs_prints_the_deployments_report(
    shoal: Shoal, namespace: str, server_url: str
) -> None:
    code, out = shoal("rollout", "diffs", "deployment/web", "-n", namespace)
    assert code == 1 and "no DiffReport for deployment/web" in out
    with Client(server_url) as client:
        client.create(
            DiffReport.new("other-abc", namespace, spec=DiffReportSpec(deployment="other"))
        )
        client.create(DiffReport.new("web-abc", namespace, spec=DiffReportSpec(deployment="web")))
    code, out = shoal("rollout", "diffs", "deployment/web", "-n", namespace)
    assert code == 0, out
    assert "diffreport/web-abc: deployment/web" in out
