"""`shoal agent` on its own, joining `shoal server --no-agent` as a second machine would: it
registers its Node, the scheduler binds pods to it, it runs them behind its own Envoy; a
kill -9 leaves them serving and the restarted agent re-adopts them; SIGTERM stops them all."""

from __future__ import annotations

import psutil
import pytest
from agent_harness import (
    ServerFactory,
    ShoalAgent,
    app_deployment,
    free_port,
    get_version,
    pods_of,
    service,
    wait_for,
    wait_rollout,
)

from shoal.api.node import Node

pytestmark = pytest.mark.e2e


def test_a_standalone_agent_runs_pods_survives_kill_9_and_stops_them_on_sigterm(
    shoal_server_factory: ServerFactory,
) -> None:
    server = shoal_server_factory(agent=False)
    agent = ShoalAgent(server, "n2")
    agent.start()
    assert server.client.get(Node, "n2").status.envoy_admin_port is not None
    port = free_port()
    server.client.apply_all([app_deployment("web", replicas=2), service("web", port)])
    wait_rollout(server.client, "web")
    pods = pods_of(server.client, "web")
    assert {p.spec.node_name for p in pods} == {"n2"}
    assert {get_version(port) for _ in range(10)} == {"v1"}
    pids = {p.status.pid for p in pods}

    agent.crash()
    assert {get_version(port) for _ in range(10)} == {"v1"}, "Envoy serves on"
    agent.start()
    wait_for("re-adoption", lambda: agent.log().count("re-adopted pid") == 2)
    assert {p.status.pid for p in pods_of(server.client, "web")} == pids

    assert agent.stop() == 0
    assert not [p for p in agent.leftovers() if p.status() != psutil.STATUS_ZOMBIE]
