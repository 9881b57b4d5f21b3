"""Sticky canary cohorts in a real Envoy decide exactly like feature toggles: for every user id
(header) or session (cookie), the canary serves it iff `bucket(value) <= weight`; a client
cannot choose its cohort by sending the bucket header itself."""

from __future__ import annotations

import random
import string
from collections.abc import Callable

import httpx
import pytest
from envoy_harness import EnvoyHarness, Upstream, free_port

from shoal.agent.envoy import Endpoint, RoutingTable, UpstreamCluster, apply_and_confirm
from shoal.agent.envoy.cohort import COHORT_HEADER
from shoal.agent.rollout_routing import service_routes
from shoal.api.deployment import Deployment
from shoal.api.rollout import RolloutStatus, TrafficRouting
from shoal.api.service import Service
from shoal.toggles.hashing import bucket

pytestmark = pytest.mark.e2e

WEIGHT = 30


def sticky_table(
    port: int, stable: Upstream, canary: Upstream, stickiness: dict[str, str]
) -> RoutingTable:
    deployment = Deployment.from_json(
        {
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"command": ["x"]}},
                "strategy": {"type": "Canary", "canary": {"stickiness": stickiness}},
            },
        }
    )
    deployment.status.rollout = RolloutStatus(
        traffic=TrafficRouting(version=1, stable="s", canary="c", weight=WEIGHT)
    )
    service = Service.new("web", spec={"selector": {"app": "web"}, "port": port})
    routing = service_routes(service, deployment, [])
    clusters = {
        "default.web.s": UpstreamCluster("default.web.s", (Endpoint("127.0.0.1", stable.port),)),
        "default.web.c": UpstreamCluster("default.web.c", (Endpoint("127.0.0.1", canary.port),)),
    }
    return RoutingTable((routing.listener,), tuple(clusters.values()))


def user_ids(count: int) -> list[str]:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-_.@"
    fixed = ["", "a", "ab", "abc", "abcd", "abcde", "user-42", "x" * 37]
    return fixed + ["".join(rng.choices(alphabet, k=rng.randint(1, 40))) for _ in range(count)]


async def test_header_cohorts_match_toggle_buckets(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    stable, canary = upstreams("stable"), upstreams("canary")
    port = free_port()
    table = sticky_table(port, stable, canary, {"header": "x-user-id"})
    await apply_and_confirm(envoy.writer, envoy.supervisor.admin, table)
    mismatches = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for value in user_ids(400):
            expected = "canary" if bucket(value) <= WEIGHT else "stable"
            for spoof in ("1", "100"):  # the client's own bucket header is ignored
                answer = await client.get("/", headers={"x-user-id": value, COHORT_HEADER: spoof})
                if answer.text != expected:
                    mismatches.append((value, spoof, answer.text, bucket(value)))
    assert mismatches == []


async def test_cookie_cohorts_match_toggle_buckets(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    stable, canary = upstreams("stable"), upstreams("canary")
    port = free_port()
    table = sticky_table(port, stable, canary, {"cookie": "session"})
    await apply_and_confirm(envoy.writer, envoy.supervisor.admin, table)
    seen = set()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for value in user_ids(100)[1:]:
            cookie = f"theme=dark; session={value}; lang=en"
            answer = await client.get("/", headers={"cookie": cookie})
            assert answer.text == ("canary" if bucket(value) <= WEIGHT else "stable"), value
            seen.add(answer.text)
    assert seen == {"canary", "stable"}
