"""Zero-downtime rolling updates through a real shoal server, agent and Envoy.

Under 8 keep-alive clients (a third of their requests are POSTs, which Envoy never retries on
a reset), 10 consecutive rolling updates of a 3-replica Deployment fail no request, and once a
rollout is done (its old pods stopped) every answer comes from the new version. The same run
with the drain confirmation switched off (the agent's test knob) does fail requests: the
first test can fail, and the drain is what makes it pass.
"""

from __future__ import annotations

import time
from functools import partial

import pytest
from agent_harness import (
    Load,
    ServerFactory,
    ShoalServer,
    app_deployment,
    free_port,
    pods_of,
    service,
    under_load,
    wait_for,
    wait_rollout,
)

pytestmark = pytest.mark.e2e

ROLLOUTS = 10
CLIENTS = 8


def answered_since(load: Load, since: float, count: int = 50) -> bool:
    return len(load.all(since)) >= count


def deploy(server: ShoalServer, port: int, version: str, replicas: int = 3) -> None:
    server.client.apply_all(
        [app_deployment("web", version=version, replicas=replicas), service("web", port)]
    )


def test_ten_rolling_updates_under_load_fail_no_request(shoal_server: ShoalServer) -> None:
    port = free_port()
    deploy(shoal_server, port, "v1")
    wait_rollout(shoal_server.client, "web")
    with under_load(port, clients=CLIENTS, post_every=3) as load:
        for number in range(2, ROLLOUTS + 2):
            version = f"v{number}"
            deploy(shoal_server, port, version)
            if number == ROLLOUTS + 1:  # the last one followed as a user would
                status = shoal_server.cli("rollout", "status", "deployment/web", "--timeout", "60s")
                assert status.returncode == 0 and "successfully rolled out" in status.stdout
            wait_rollout(shoal_server.client, "web")
            done = time.monotonic()
            wait_for("answers after it", partial(answered_since, load, done))
            assert load.versions(since=done) == {version}, f"old answers after rollout {version}"
        # Scaling down drains too: 3 -> 1 at once leaves two pods draining beside one.
        deploy(shoal_server, port, f"v{ROLLOUTS + 1}", replicas=1)
        wait_for("one pod", lambda: len(pods_of(shoal_server.client, "web")) == 1)
        time.sleep(0.3)
    assert load.total > 1000, "the load generator hardly ran"
    assert load.failed == 0, f"{load.failed} of {load.total} failed: {load.errors}"


def test_without_the_drain_the_same_rollouts_fail_requests(
    shoal_server_factory: ServerFactory,
) -> None:
    """Test of the test: SHOAL_TEST_SKIP_DRAIN=1 signals old pods as soon as they are deleted,
    before Envoy has stopped sending them requests. Bounded: at most 10 rollouts (usually the
    first fails requests; once, on a quiet machine, five in a row did not)."""
    server = shoal_server_factory(env={"SHOAL_TEST_SKIP_DRAIN": "1"})
    port = free_port()
    deploy(server, port, "v1")
    wait_rollout(server.client, "web")
    with under_load(port, clients=CLIENTS, post_every=3) as load:
        for number in range(2, 12):
            deploy(server, port, f"v{number}")
            wait_rollout(server.client, "web")
            if load.failed:
                break
    assert load.failed > 0, f"no request failed in {load.total} without the drain"
