"""Sandboxed pods keep the agent issue's guarantees (issue 7), with `shoal server`, its embedded
agent, Envoy and real sandboxed processes:

- kill -9 of the server leaves sandboxed pods serving through Envoy; the restarted agent
  re-adopts them (same pids and start times, no restart) and finds their cgroups again (their
  usage is read, and a graceful stop afterwards leaves nothing behind);
- zero-downtime rolling updates: 3 rollouts of a 3-replica sandboxed Deployment under 8
  keep-alive clients through its Service, 0 failed requests, and after each rollout every
  answer comes from the new version.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psutil
import pytest
from agent_harness import (
    ShoalServer,
    free_port,
    get_version,
    pods_of,
    service,
    under_load,
    wait_for,
    wait_rollout,
)
from sandbox_harness import (
    app_fixtures,
    app_in_sandbox,
    requires_sandbox,
    servers_under,
)

from shoal.api.pod import Pod

pytestmark = [pytest.mark.e2e, requires_sandbox()]
base, app = app_fixtures()


def identities(pods: list[Pod]) -> dict[str, tuple[int | None, float | None, int]]:
    return {
        p.metadata.uid or "": (p.status.pid, p.status.process_start_time, p.status.restart_count)
        for p in pods
    }


def usage_pids(server: ShoalServer) -> dict[str, int]:
    answer = httpx.get(f"{server.url}/api/v1/namespaces/default/podusage", timeout=30).json()
    return {item["metadata"]["uid"]: item["usage"]["pids"] for item in answer["items"]}


def test_kill_9_then_restart_readopts_sandboxed_pods(base: Path, app: Path) -> None:
    with servers_under(base) as start:
        server, port = start(), free_port()
        server.client.apply_all([app_in_sandbox("web", app, replicas=2), service("web", port)])
        wait_rollout(server.client, "web")
        before = identities(pods_of(server.client, "web"))
        assert all(pids >= 3 for pids in usage_pids(server).values())  # bwrap x2 + the app

        server.crash()
        assert all(psutil.pid_exists(pid) for pid, _, _ in before.values() if pid)
        assert {get_version(port) for _ in range(10)} == {"v1"}, "Envoy stopped serving"

        server.start()
        wait_for("re-adoption", lambda: server.log().count("re-adopted pid") == 2)
        time.sleep(1.0)  # a duplicate start would show within the probe period
        assert identities(pods_of(server.client, "web")) == before
        assert set(usage_pids(server)) == set(before), "cgroups of re-adopted pods not found"
        assert all(pids >= 3 for pids in usage_pids(server).values())
        assert {get_version(port) for _ in range(10)} == {"v1"}


def test_rolling_updates_of_sandboxed_pods_lose_no_request(base: Path, app: Path) -> None:
    with servers_under(base) as start:
        server, port = start(), free_port()
        server.client.apply_all([app_in_sandbox("web", app, replicas=3), service("web", port)])
        wait_rollout(server.client, "web")
        with under_load(port, clients=8) as load:
            for version in ("v2", "v3", "v4"):
                server.client.apply_all(
                    [app_in_sandbox("web", app, replicas=3, version=version), service("web", port)]
                )
                wait_rollout(server.client, "web", timeout=90)
                done = time.monotonic()
                time.sleep(0.5)
                assert load.versions(since=done) == {version}
        print(f"\n3 sandboxed rollouts under load: {load.total} requests, {load.failed} failed")
        assert load.failed == 0, load.errors
        assert load.total > 1000
