"""A pod's life as a user sees it in its status and events, with real processes and Envoy: bad
input (a readiness probe that can never pass, a command that does not exist), restarts with
back-off, liveness failures (restart) versus readiness failures (out of Envoy only).
The tests share one server; each uses its own namespace and Service port."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
from agent_harness import (
    ShoalServer,
    app_deployment,
    free_port,
    get_version,
    pods_of,
    service,
    wait_for,
    wait_rollout,
)

from shoal.api.deployment import Deployment
from shoal.api.event import Event
from shoal.api.meta import find_condition
from shoal.api.pod import Pod

pytestmark = pytest.mark.e2e


def events_of(server: ShoalServer, name: str, namespace: str) -> list[Event]:
    events = server.client.list(Event, namespace).items
    return [e for e in events if e.involved_object.name == name]


def test_a_readiness_probe_on_a_closed_port_stalls_the_rollout_and_old_pods_serve(
    shared_server: ShoalServer,
) -> None:
    server, namespace, port = shared_server, "stuck", free_port()
    server.client.apply_all(
        [app_deployment("web", replicas=2, namespace=namespace), service("web", port, namespace)]
    )
    wait_rollout(server.client, "web", namespace)
    closed = free_port()
    never_open = {"tcpSocket": {"port": closed}, "periodSeconds": 0.2, "failureThreshold": 1}
    broken = app_deployment(
        "web", replicas=2, namespace=namespace, version="v2", readiness=never_open,
        progress_deadline=2,
    )  # fmt: skip
    server.client.apply_all([broken])

    def timed_out() -> bool:
        deployment = server.client.get(Deployment, "web", namespace)
        progressing = find_condition(deployment.status.conditions, "Progressing")
        return progressing is not None and progressing.reason == "ProgressDeadlineExceeded"

    wait_for("ProgressDeadlineExceeded", timed_out)
    deployment = server.client.get(Deployment, "web", namespace)
    progressing = find_condition(deployment.status.conditions, "Progressing")
    assert progressing is not None and progressing.status == "False"
    reasons = {e.reason for e in events_of(server, "web", namespace)}
    assert "ProgressDeadlineExceeded" in reasons
    new = [p for p in pods_of(server.client, "web", namespace) if p.spec.env[0].value == "v2"]
    assert len(new) == 1 and new[0].status.phase == "Running" and not new[0].status.ready
    ready = find_condition(new[0].status.conditions, "ContainersReady")
    assert ready is not None and ready.reason == "ReadinessProbeFailed"
    assert ready.message and f"127.0.0.1:{closed}" in ready.message, ready.message
    assert "Unhealthy" in {e.reason for e in events_of(server, new[0].metadata.name, namespace)}
    assert {get_version(port) for _ in range(30)} == {"v1"}, "old pods must still serve"
    status = server.cli("rollout", "status", "deployment/web", "-n", namespace, "--timeout", "5s")
    assert status.returncode == 1 and "progress deadline" in status.stdout + status.stderr


def test_a_missing_command_is_a_clear_status_reason_not_an_agent_crash(
    shared_server: ShoalServer, tmp_path: Path
) -> None:
    server, namespace = shared_server, "missing"
    missing = str(tmp_path / "no-such-program")
    server.client.apply_all(
        [app_deployment("ghost", replicas=1, namespace=namespace, command=[missing])]
    )

    def reported() -> Pod | None:
        pods = pods_of(server.client, "ghost", namespace)
        return pods[0] if pods and pods[0].status.reason == "ExecutableNotFound" else None

    pod = wait_for("ExecutableNotFound", reported)
    assert pod.status.message and "no such file" in pod.status.message
    assert not pod.status.ready and pod.status.pid is None
    assert "ExecutableNotFound" in {
        e.reason for e in events_of(server, pod.metadata.name, namespace)
    }
    # The agent goes on: another deployment on the same node starts and gets ready.
    server.client.apply_all([app_deployment("alive", replicas=1, namespace=namespace)])
    wait_rollout(server.client, "alive", namespace)


def test_a_crashing_process_backs_off_and_shows_it_in_status(shared_server: ShoalServer) -> None:
    server, namespace = shared_server, "crashy"
    crash = ["sh", "-c", "echo about to fail; exit 3"]
    server.client.apply_all(
        [app_deployment("crash", replicas=1, namespace=namespace, command=crash)]
    )

    def backing_off() -> Pod | None:
        pods = pods_of(server.client, "crash", namespace)
        if not pods:
            return None
        status = pods[0].status
        last = status.last_state
        looping = status.reason == "CrashLoopBackOff" and status.restart_count >= 2
        return pods[0] if looping and last is not None and last.exit_code == 3 else None

    pod = wait_for("CrashLoopBackOff with restarts", backing_off, interval=0.02)
    assert pod.status.message and "back-off" in pod.status.message
    assert pod.status.last_state is not None and pod.status.last_state.reason == "Error"
    first = pod.status.restart_count
    time.sleep(1.0)
    again = pods_of(server.client, "crash", namespace)[0].status.restart_count
    assert first <= again <= first + 2, "the back-off must slow restarts down (0.5 s, 1 s, 2 s...)"


def test_liveness_failure_restarts_readiness_failure_only_moves_traffic(
    shared_server: ShoalServer, tmp_path: Path
) -> None:
    server, namespace, port = shared_server, "probes", free_port()
    flags = tmp_path / "flags"
    flags.mkdir()

    def flag_probe(suffix: str) -> dict[str, object]:
        check = f'test ! -e "{flags}/$SHOAL_POD_NAME.{suffix}"'
        return {
            "exec": {"command": ["sh", "-c", check]},
            "periodSeconds": 0.2,
            "failureThreshold": 1,
        }

    probed = app_deployment(
        "probed", replicas=2, namespace=namespace,
        readiness=flag_probe("unready"), liveness=flag_probe("dead"),
    )  # fmt: skip
    server.client.apply_all([probed, service("probed", port, namespace)])
    wait_rollout(server.client, "probed", namespace)
    first, second = pods_of(server.client, "probed", namespace)
    first_port = first.status.host_port
    assert first_port is not None and second.status.host_port is not None

    def current(pod: Pod) -> Pod:
        return server.client.get(Pod, pod.metadata.name, namespace)

    # Readiness fails: out of Envoy, not restarted; the Service keeps answering.
    (flags / f"{first.metadata.name}.unready").touch()
    wait_for("not ready", lambda: not current(first).status.ready)
    wait_for("out of Envoy", lambda: not server.envoy_lists(first_port))
    assert {httpx.get(f"http://127.0.0.1:{port}/").status_code for _ in range(20)} == {200}
    time.sleep(0.6)
    after = current(first)
    assert after.status.pid == first.status.pid and after.status.restart_count == 0
    (flags / f"{first.metadata.name}.unready").unlink()
    wait_for("ready again", lambda: current(first).status.ready)
    assert server.envoy_lists(first_port)

    # Liveness fails: the process is restarted (new pid, restartCount 1, lastState Unhealthy).
    dead = flags / f"{second.metadata.name}.dead"
    dead.touch()
    wait_for("a restart", lambda: current(second).status.restart_count >= 1, interval=0.02)
    dead.unlink()
    restarted = wait_for(
        "ready after the restart", lambda: (p := current(second)).status.ready and p
    )
    assert restarted.status.pid != second.status.pid
    assert restarted.status.last_state is not None
    assert restarted.status.last_state.reason == "Unhealthy"
    messages = [e.message for e in events_of(server, second.metadata.name, namespace)]
    assert any("liveness probe failed" in m for m in messages), messages


def test_a_taken_service_port_is_an_event_and_blocks_nothing_else(
    shared_server: ShoalServer,
) -> None:
    """Another process holds one Service's port: that Service gets a PortInUse event, and the
    node's other Services keep getting their changes (a rejected listener must not freeze the
    whole data plane)."""
    server, namespace = shared_server, "taken"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server.client.apply_all([app_deployment("squat", replicas=1, namespace=namespace),
                                 service("squat", taken, namespace)])  # fmt: skip
        wait_for(
            "a PortInUse event",
            lambda: "PortInUse" in {e.reason for e in events_of(server, "squat", namespace)},
        )
        free = free_port()
        server.client.apply_all([app_deployment("fine", replicas=1, namespace=namespace),
                                 service("fine", free, namespace)])  # fmt: skip
        wait_rollout(server.client, "fine", namespace)
        assert get_version(free) == "v1"
    wait_for("the freed port to be served", lambda: _answers(taken))


def _answers(port: int) -> bool:
    try:
        return get_version(port) == "v1"
    except Exception:
        return False
