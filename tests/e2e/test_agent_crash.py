"""Crash safety of the node agent (embedded in `shoal server`), with real processes and Envoy.

- kill -9 of the server leaves pods and Envoy serving; the restarted agent re-adopts them
  (same pids and start times, restartCount unchanged, the same Envoy) and carries on;
- kill -9 of the server in the middle of a rollout: no request fails while it is down, and after
  the restart the rollout completes with no pod duplicated or orphaned;
- SIGTERM of the server stops every pod and Envoy (the fixture fails on any leftover);
- kill -9 of one pod's process: it is restarted, ready and routable again quickly, and retries
  cover the requests it had.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from agent_harness import (
    ShoalServer,
    app_deployment,
    free_port,
    get_version,
    kill_leftovers,
    pods_of,
    rollout_done,
    service,
    under_load,
    wait_for,
    wait_rollout,
)

from shoal.api.event import Event
from shoal.api.pod import Pod

pytestmark = pytest.mark.e2e


def identities(pods: list[Pod]) -> dict[str, tuple[int | None, float | None, int]]:
    """uid -> (pid, process start time, restartCount)."""
    return {
        p.metadata.uid or "": (p.status.pid, p.status.process_start_time, p.status.restart_count)
        for p in pods
    }


def alive_as_recorded(pod: Pod) -> bool:
    """The pod's recorded pid runs, and it is the very process recorded (not a reused pid)."""
    if pod.status.pid is None or pod.status.process_start_time is None:
        return False
    try:
        return (
            abs(psutil.Process(pod.status.pid).create_time() - pod.status.process_start_time) < 0.01
        )
    except psutil.Error:
        return False


def test_restart_after_kill_9_readopts_pods_and_envoy_then_sigterm_stops_all(
    shoal_server: ShoalServer,
) -> None:
    server, port = shoal_server, free_port()
    server.client.apply_all([app_deployment("web", replicas=2), service("web", port)])
    wait_rollout(server.client, "web")
    before = identities(pods_of(server.client, "web"))
    envoy = server.envoy_pid()
    assert envoy is not None

    server.crash()
    assert all(psutil.pid_exists(pid) for pid, _, _ in before.values() if pid)
    assert psutil.pid_exists(envoy)
    assert {get_version(port) for _ in range(20)} == {"v1"}, "Envoy stopped serving"

    server.start()
    wait_for("re-adoption", lambda: server.log().count("re-adopted pid") == 2)
    assert identities(pods_of(server.client, "web")) == before
    assert server.envoy_pid() == envoy and psutil.pid_exists(envoy), "Envoy was restarted"
    reasons = {e.reason for e in server.client.list(Event, "default").items}
    assert "PortInUse" not in reasons, "the adopted Envoy's own port is not another process's"
    # ... and it carries on: a scale-up is started, probed and routed by the new agent.
    server.client.apply_all([app_deployment("web", replicas=3), service("web", port)])
    wait_rollout(server.client, "web")
    after = identities(pods_of(server.client, "web"))
    assert {uid: after[uid] for uid in before} == before
    assert len(server.pod_processes()) == 3

    assert server.stop() == 0
    assert not psutil.pid_exists(envoy) or psutil.Process(envoy).status() == psutil.STATUS_ZOMBIE
    assert kill_leftovers(server) == [], "SIGTERM left processes running"


def test_kill_9_of_the_server_mid_rollout_fails_nothing_and_the_rollout_completes(
    shoal_server: ShoalServer,
) -> None:
    server, port = shoal_server, free_port()
    server.client.apply_all([app_deployment("web"), service("web", port)])
    wait_rollout(server.client, "web")
    envoy = server.envoy_pid()
    # New pods take a second to become ready, so the rollout is surely half-way when killed.
    slow = app_deployment("web", version="v2", env={"READY_AFTER_S": "1"})
    with under_load(port, post_every=3) as load:
        server.client.apply_all([slow, service("web", port)])

        def half_way() -> bool:
            pods = pods_of(server.client, "web")
            new = [p for p in pods if p.spec.env[0].value == "v2"]
            return any(p.status.ready for p in new) and len(new) < 3

        wait_for("the rollout half-way", half_way, interval=0.02)
        server.crash()
        down = time.monotonic()
        time.sleep(2.0)
        while_down = load.all(since=down)
        failed_down = [s for s in while_down if not s.ok]
        assert while_down and not failed_down, f"failed while down: {load.errors}"
        server.start()
        wait_rollout(server.client, "web")
        time.sleep(0.3)
    assert load.failed == 0, f"{load.failed} of {load.total} failed: {load.errors}"
    pods = pods_of(server.client, "web")
    described = [(p.metadata.name, p.spec.env[0].value, p.status.pid) for p in pods]
    assert len(pods) == 3 and all(p.spec.env[0].value == "v2" for p in pods), described
    assert all(alive_as_recorded(p) for p in pods), described
    pids = {p.status.pid for p in pods}
    running = {p.pid: " ".join(p.cmdline()) for p in server.pod_processes()}
    assert set(running) == pids, f"processes {running} vs pods {described}\n{server.log()[-3000:]}"
    assert server.envoy_pid() == envoy, server.log()[-3000:]


def test_kill_9_of_a_pod_restarts_it_and_retries_cover_it(shoal_server: ShoalServer) -> None:
    server, port = shoal_server, free_port()
    server.client.apply_all([app_deployment("web"), service("web", port)])
    wait_rollout(server.client, "web")
    with under_load(port) as load:
        time.sleep(0.5)
        victim = pods_of(server.client, "web")[0]
        assert victim.status.pid is not None
        os.kill(victim.status.pid, signal.SIGKILL)

        def restarted() -> Pod | None:
            pod = server.client.get(Pod, victim.metadata.name)
            fresh = pod.status.ready and pod.status.pid not in (None, victim.status.pid)
            return pod if fresh else None

        # The acceptance bound (measured: ~0.7 s, of which 0.5 s is the first restart's back-off).
        pod = wait_for("the pod ready again", restarted, timeout=2.0, interval=0.02)
        assert pod.status.host_port is not None
        served = server.envoy_requests_to(pod.status.host_port)
        wait_for(
            "Envoy to send it requests",
            lambda: server.envoy_requests_to(pod.status.host_port) > served,
        )
        time.sleep(1.0)
    assert pod.status.restart_count == 1
    assert pod.status.last_state is not None and pod.status.last_state.signal == signal.SIGKILL
    assert load.failed <= 0.001 * load.total, f"{load.failed} of {load.total}: {load.errors}"
    assert rollout_done(server.client, "web")
