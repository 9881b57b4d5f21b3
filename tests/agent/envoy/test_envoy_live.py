"""The Envoy layer against a real Envoy and real upstream processes: apply, confirm, serve,
switch, weights, header routes, stickiness, mirroring, rejection, in-flight requests, stats."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from envoy_harness import EnvoyHarness, Upstream, free_port

from shoal.agent.envoy import (
    ConfigRejectedError,
    ConfirmTimeoutError,
    Destination,
    Endpoint,
    HeaderMatch,
    Mirror,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
    apply_and_confirm,
    canary_routes,
)

pytestmark = pytest.mark.e2e


def cluster(name: str, *upstreams: Upstream) -> UpstreamCluster:
    return UpstreamCluster(name, tuple(Endpoint("127.0.0.1", u.port) for u in upstreams))


def single(listener: str, port: int, cluster_name: str) -> ServiceListener:
    return ServiceListener(listener, port, (Route(Destination.single(cluster_name)),))


async def bodies(port: int, n: int, headers: dict[str, str] | None = None) -> Counter[str]:
    out: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for _ in range(n):
            response = await client.get("/", headers=headers)
            assert response.status_code == 200, response.text
            out[response.text] += 1
    return out


async def test_apply_confirm_serve_and_switch_endpoints(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    a, b = upstreams("a"), upstreams("b")
    port = free_port()
    admin = envoy.supervisor.admin
    first = await apply_and_confirm(
        envoy.writer,
        admin,
        RoutingTable(
            (single("default.shop", port, "default.shop.v1"),), (cluster("default.shop.v1", a),)
        ),
    )
    assert first.eds == {"default.shop.v1": "1"} and first.rds == {"default.shop": "1"}
    assert await bodies(port, 5) == Counter({"a": 5})

    switched = await apply_and_confirm(
        envoy.writer,
        admin,
        RoutingTable(
            (single("default.shop", port, "default.shop.v1"),), (cluster("default.shop.v1", b),)
        ),
    )
    # Only the endpoints changed: one EDS file, nothing else rewritten.
    assert switched.eds == {"default.shop.v1": "2"}
    assert switched.cds is None and switched.lds is None and not switched.rds
    assert await bodies(port, 5) == Counter({"b": 5})
    versions, rejected = await admin.reported()
    assert versions["cluster.default.shop.v1"] == "2"
    assert rejected["cluster.default.shop.v1"] == 0


async def test_weights_header_routes_and_overrides(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    stable, canary = upstreams("stable"), upstreams("canary")
    port = free_port()
    routes = canary_routes(
        "ns.svc.s",
        "ns.svc.c",
        {"ns.svc.s": 90, "ns.svc.c": 10},
        [HeaderMatch("x-user-group", "beta")],
    )
    table = RoutingTable(
        (ServiceListener("ns.svc", port, routes),),
        (cluster("ns.svc.s", stable), cluster("ns.svc.c", canary)),
    )
    await apply_and_confirm(envoy.writer, envoy.supervisor.admin, table)
    split = await bodies(port, 400)
    assert split["stable"] + split["canary"] == 400
    assert 12 <= split["canary"] <= 80, split  # expected 40; generous bound
    assert await bodies(port, 20, {"x-user-group": "beta"}) == Counter({"canary": 20})
    assert await bodies(port, 20, {"x-shoal-canary": "always"}) == Counter({"canary": 20})
    never = {"x-shoal-canary": "never", "x-user-group": "beta"}  # the override wins
    assert await bodies(port, 20, never) == Counter({"stable": 20})


async def test_sticky_weights_by_header_hash(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    stable, canary = upstreams("stable"), upstreams("canary")
    port = free_port()
    dest = Destination.split({"s": 50, "c": 50}, hash_header="x-user-id")
    table = RoutingTable(
        (ServiceListener("sticky", port, (Route(dest),)),),
        (cluster("s", stable), cluster("c", canary)),
    )
    await apply_and_confirm(envoy.writer, envoy.supervisor.admin, table)
    seen: Counter[str] = Counter()
    for user in range(40):
        answers = await bodies(port, 5, {"x-user-id": f"user-{user}"})
        assert len(answers) == 1, f"user-{user} saw both versions: {answers}"
        seen.update(answers.keys())
    assert seen["stable"] > 0 and seen["canary"] > 0


async def test_sticky_weights_by_cookie_hash(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    stable, canary = upstreams("stable"), upstreams("canary")
    port = free_port()
    dest = Destination.split({"s": 50, "c": 50}, hash_cookie="shoal-user")
    table = RoutingTable(
        (ServiceListener("sticky", port, (Route(dest),)),),
        (cluster("s", stable), cluster("c", canary)),
    )
    await apply_and_confirm(envoy.writer, envoy.supervisor.admin, table)
    seen: Counter[str] = Counter()
    for user in range(30):
        answers = await bodies(port, 5, {"cookie": f"theme=dark; shoal-user=u{user}"})
        assert len(answers) == 1, f"u{user} saw both versions: {answers}"
        seen.update(answers.keys())
    assert seen["stable"] > 0 and seen["canary"] > 0


async def test_mirror_copies_safe_methods_only(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    primary, shadow = upstreams("primary"), upstreams("shadow")
    port = free_port()
    listener = ServiceListener(
        "mirrored", port, (Route(Destination.single("p")),), mirror=Mirror("m", 100.0)
    )
    table = RoutingTable((listener,), (cluster("p", primary), cluster("m", shadow)))
    await apply_and_confirm(envoy.writer, envoy.supervisor.admin, table)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for _ in range(30):
            assert (await client.get("/")).text == "primary"
        for _ in range(10):
            assert (await client.post("/", content=b"x")).text == "primary"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{shadow.port}") as direct:
        counts: dict[str, int] = {}
        for _ in range(200):  # copies are fire-and-forget: wait for them to land
            counts = json.loads((await direct.get("/__count")).text)
            if counts.get("GET", 0) >= 30:
                break
            await asyncio.sleep(0.02)
    assert counts.get("GET") == 30
    assert counts.get("shadow-header") == 30  # copies are marked, so services can skip effects
    assert counts.get("POST", 0) == 0


async def test_rejected_config_is_reported_and_old_config_keeps_serving(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    a = upstreams("a")
    port = free_port()
    good = RoutingTable((single("l", port, "c"),), (cluster("c", a),))
    await apply_and_confirm(envoy.writer, envoy.supervisor.admin, good)
    bad = RoutingTable(
        (single("l", port, "c"),), (UpstreamCluster("c", (Endpoint("not-an-ip", 80),)),)
    )
    with pytest.raises(ConfigRejectedError) as caught:
        await apply_and_confirm(envoy.writer, envoy.supervisor.admin, bad, timeout_s=5)
    assert caught.value.subscription == "cluster.c"
    assert "no reason found" not in caught.value.reason
    assert "not-an-ip" in caught.value.reason or "address" in caught.value.reason.lower()
    assert await bodies(port, 3) == Counter({"a": 3})
    # The baseline of the next apply comes from the last successful confirm (no request to
    # Envoy): a second bad file is still reported, and a good one after it confirmed.
    worse = RoutingTable(
        (single("l", port, "c"),), (UpstreamCluster("c", (Endpoint("not-an-ip-2", 80),)),)
    )
    with pytest.raises(ConfigRejectedError):
        await apply_and_confirm(envoy.writer, envoy.supervisor.admin, worse, timeout_s=5)
    b = upstreams("b")
    await apply_and_confirm(
        envoy.writer, envoy.supervisor.admin, RoutingTable((single("l", port, "c"),),
                                                           (cluster("c", b),))
    )  # fmt: skip
    assert await bodies(port, 3) == Counter({"b": 3})
    with pytest.raises(ConfigRejectedError):
        await apply_and_confirm(envoy.writer, envoy.supervisor.admin, bad, timeout_s=5)


async def test_active_requests_and_cluster_stats(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    a = upstreams("a")
    port = free_port()
    admin = envoy.supervisor.admin
    await apply_and_confirm(
        envoy.writer, admin, RoutingTable((single("l", port, "c"),), (cluster("c", a),))
    )
    await bodies(port, 10)
    async with httpx.AsyncClient(timeout=10) as client:
        slow = asyncio.create_task(
            client.get(f"http://127.0.0.1:{port}/", headers={"x-delay-ms": "1500"})
        )
        for _ in range(100):
            if await admin.active_requests("c", "127.0.0.1", a.port) == 1:
                break
            await asyncio.sleep(0.02)
        assert await admin.active_requests("c", "127.0.0.1", a.port) == 1
        assert not await admin.wait_drained("c", "127.0.0.1", a.port, timeout_s=0.2)
        assert await admin.wait_drained("c", "127.0.0.1", a.port, timeout_s=5)
        assert (await slow).status_code == 200
    stats = await admin.cluster_stats("c")
    for _ in range(60):  # histogram quantiles are recomputed at each 1 s stats flush
        if stats.p99_ms is not None and stats.p99_ms >= 1000:
            break
        await asyncio.sleep(0.1)
        stats = await admin.cluster_stats("c")
    assert stats.rq_2xx == 11 and stats.rq_total == 11 and stats.rq_5xx == 0
    assert stats.success_rate == 1.0
    assert stats.p99_ms is not None and stats.p99_ms >= 1000  # the 1.5 s request


async def test_draining_endpoint_gets_no_new_requests_but_its_in_flight_ones_stay_visible(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    old, new = upstreams("old"), upstreams("new")
    port = free_port()
    admin = envoy.supervisor.admin

    def with_old(draining: bool) -> RoutingTable:
        endpoints = (
            Endpoint("127.0.0.1", old.port, draining=draining),
            Endpoint("127.0.0.1", new.port),
        )
        return RoutingTable((single("l", port, "c"),), (UpstreamCluster("c", endpoints),))

    await apply_and_confirm(envoy.writer, admin, with_old(False))
    async with httpx.AsyncClient(timeout=10) as client:
        slow: list[asyncio.Task[httpx.Response]] = []
        for _ in range(100):  # round robin: some slow request lands on `old` quickly
            slow.append(
                asyncio.create_task(
                    client.get(f"http://127.0.0.1:{port}/", headers={"x-delay-ms": "1500"})
                )
            )
            await asyncio.sleep(0.01)
            if await admin.active_requests("c", "127.0.0.1", old.port) >= 1:
                break
        await apply_and_confirm(envoy.writer, admin, with_old(True))
        assert await bodies(port, 10) == Counter({"new": 10})
        assert await admin.active_requests("c", "127.0.0.1", old.port) >= 1
        assert await admin.wait_drained("c", "127.0.0.1", old.port, timeout_s=5)
        assert all(r.status_code == 200 for r in await asyncio.gather(*slow))


async def test_preview_listener_and_cluster_removal(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    blue, green = upstreams("blue"), upstreams("green")
    active, preview = free_port(), free_port()
    admin = envoy.supervisor.admin
    both = RoutingTable(
        (
            single("ns.web", active, "ns.web.blue"),
            single("ns.web.preview", preview, "ns.web.green"),
        ),
        (cluster("ns.web.blue", blue), cluster("ns.web.green", green)),
    )
    await apply_and_confirm(envoy.writer, admin, both)
    assert await bodies(active, 5) == Counter({"blue": 5})
    assert await bodies(preview, 5) == Counter({"green": 5})
    promoted = RoutingTable(
        (single("ns.web", active, "ns.web.green"),), (cluster("ns.web.green", green),)
    )
    applied = await apply_and_confirm(envoy.writer, admin, promoted)
    assert applied.rds == {"ns.web": "2"} and applied.lds is not None and applied.cds is not None
    assert await bodies(active, 5) == Counter({"green": 5})
    versions, _ = await admin.reported()
    assert "cluster.ns.web.blue" not in versions  # removed from Envoy
    with pytest.raises(httpx.ConnectError):
        await bodies(preview, 1)


async def test_a_taken_port_is_rejected_not_shared(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    """Another process listening with SO_REUSEPORT (as a second Envoy would) must make the
    listener fail, not silently split the port's traffic with it."""
    a = upstreams("a")
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        table = RoutingTable((single("l", port, "c"),), (cluster("c", a),))
        with pytest.raises((ConfigRejectedError, ConfirmTimeoutError)):
            await apply_and_confirm(envoy.writer, envoy.supervisor.admin, table, timeout_s=3)
