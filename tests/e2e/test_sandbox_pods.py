"""Sandboxed pods through the whole system (issue 7): `shoal server` with its embedded agent,
Envoy, and Deployments of tests/apps/probe_app.py run by the system python3.

- isolation absent => sandbox: the Deployment becomes ready and routable through its Service,
  and every process of its pods runs as an unprivileged uid in its own PID namespace;
- `isolation: none` runs the same app as a plain process (root, host PID namespace);
- a node that cannot sandbox (pretended with the SHOAL_TEST_SANDBOX_UNAVAILABLE test knob)
  never runs a sandboxed pod unsandboxed: the pod fails with reason SandboxUnavailable and a
  message that says how to opt out, while `isolation: none` pods still run there.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest
from agent_harness import (
    app_deployment,
    free_port,
    get_version,
    pods_of,
    service,
    wait_for,
    wait_rollout,
)
from sandbox_harness import (
    PRETEND_UNAVAILABLE,
    SYSTEM_PYTHON,
    app_fixtures,
    app_in_sandbox,
    pod_tree,
    requires_sandbox,
    sandboxed,
    servers_under,
)

from shoal.api.event import Event
from shoal.api.node import Node
from shoal.api.pod import Pod

pytestmark = [pytest.mark.e2e, requires_sandbox()]
base, app = app_fixtures()


def process_tree(pod: Pod) -> list[psutil.Process]:
    assert pod.status.pid is not None
    return pod_tree(pod.status.pid)


def pid_namespace(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/pid")


def runs_app(process: psutil.Process) -> bool:
    """The app's own interpreter (not bwrap, whose argv also names the app)."""
    command = process.cmdline()
    return len(command) == 2 and command[1].endswith("probe_app.py")


def test_sandboxed_and_plain_deployments_serve_through_their_services(
    base: Path, app: Path
) -> None:
    with servers_under(base) as start:
        server = start()
        node = server.client.get(Node, "e2e")
        assert "sandbox" in node.status.features
        web_port, plain_port = free_port(), free_port()
        plain = sandboxed(
            app_deployment("plain", replicas=1, version="plain"),
            [SYSTEM_PYTHON, str(app)],
            isolation="none",
        )
        server.client.apply_all(
            [
                app_in_sandbox("web", app, replicas=2),
                service("web", web_port),
                plain,
                service("plain", plain_port),
            ]
        )
        wait_rollout(server.client, "web")
        wait_rollout(server.client, "plain")
        assert {get_version(web_port) for _ in range(20)} == {"v1"}
        assert get_version(plain_port) == "plain"

        for pod in pods_of(server.client, "web"):
            tree = process_tree(pod)
            assert any(runs_app(process) for process in tree)
            assert all(process.uids().real != 0 for process in tree), "a sandboxed pod ran as root"
            inner = next(process for process in tree if runs_app(process))
            assert pid_namespace(inner.pid) != pid_namespace("self")
        [plain_pod] = pods_of(server.client, "plain")
        [plain_process] = process_tree(plain_pod)
        assert runs_app(plain_process) and plain_process.uids().real == os.getuid()
        assert pid_namespace(plain_process.pid) == pid_namespace("self")


def test_a_node_without_sandbox_fails_sandboxed_pods_clearly(base: Path, app: Path) -> None:
    with servers_under(base) as start:
        server = start({PRETEND_UNAVAILABLE: "pretended for a test"})
        assert "sandbox" not in server.client.get(Node, "e2e").status.features
        plain = sandboxed(
            app_deployment("plain", replicas=1), [SYSTEM_PYTHON, str(app)], isolation="none"
        )
        server.client.apply_all([app_in_sandbox("web", app, replicas=1), plain])
        wait_rollout(server.client, "plain")

        def failed_pod() -> Pod | None:
            pods = pods_of(server.client, "web")
            last = pods[0].status.last_state if pods else None
            return pods[0] if last is not None and last.reason == "SandboxUnavailable" else None

        pod = wait_for("the sandboxed pod to fail", failed_pod)
        assert pod.status.pid is None and not pod.status.ready
        assert pod.status.reason == "SandboxUnavailable"  # what `shoal get pods` shows
        assert pod.status.last_state is not None and pod.status.last_state.message
        assert "isolation: none" in pod.status.last_state.message
        assert "pretended for a test" in pod.status.last_state.message
        events = server.client.list(Event, "default").items
        reasons = {e.reason for e in events if e.involved_object.name == pod.metadata.name}
        assert "SandboxUnavailable" in reasons and "Started" not in reasons
        assert all(p.uids().real == os.getuid() for p in server.pod_processes()), "ran sandboxed"
