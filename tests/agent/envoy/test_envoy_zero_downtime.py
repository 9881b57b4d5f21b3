"""Zero downtime through a real Envoy: under keep-alive client threads, switching a service's
endpoints in make-before-break order (add new -> confirm -> mark old draining -> confirm ->
no request in flight to old -> remove old -> confirm -> stop old) fails no request. Stopping
the old process first does fail requests: the check can fail, and the order makes it pass."""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from envoy_harness import EnvoyHarness, Upstream, free_port

from shoal.agent.envoy import (
    Destination,
    Endpoint,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
    apply_and_confirm,
)

pytestmark = pytest.mark.e2e

CLUSTER = "default.web.rev"
CLIENTS = 6
SWITCHES = 4


@dataclass
class Load:
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, good: bool, error: str = "") -> None:
        with self.lock:
            if good:
                self.ok += 1
            else:
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(error)


def client(port: int, load: Load, stop: threading.Event, index: int, posts: bool) -> None:
    """One keep-alive client; with `posts`, every third request is a POST (never retried on
    reset). Each request takes ~5 ms upstream, so some are always in flight when a process is
    stopped."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    count = 0
    while not stop.is_set():
        count += 1
        method = "POST" if posts and (count + index) % 3 == 0 else "GET"
        try:
            connection.request(
                method, "/", body=b"x" if method == "POST" else None, headers={"x-delay-ms": "5"}
            )
            response = connection.getresponse()
            response.read()
            load.record(response.status == 200, f"{method} -> {response.status}")
        except (OSError, http.client.HTTPException) as error:
            load.record(False, f"{method} -> {error!r}")
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.close()


@contextmanager
def under_load(port: int, posts: bool = True) -> Iterator[Load]:
    load, stop = Load(), threading.Event()
    threads = [
        threading.Thread(target=client, args=(port, load, stop, i, posts), daemon=True)
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)


def table(port: int, *upstreams: Upstream, draining: Upstream | None = None) -> RoutingTable:
    endpoints = [Endpoint("127.0.0.1", u.port) for u in upstreams]
    if draining is not None:
        endpoints.append(Endpoint("127.0.0.1", draining.port, draining=True))
    return RoutingTable(
        (ServiceListener("default.web", port, (Route(Destination.single(CLUSTER)),)),),
        (UpstreamCluster(CLUSTER, tuple(endpoints)),),
    )


async def test_make_before_break_switches_fail_no_request(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    admin, port = envoy.supervisor.admin, free_port()
    current = upstreams("v0")
    await apply_and_confirm(envoy.writer, admin, table(port, current))
    with under_load(port) as load:
        for version in range(1, SWITCHES + 1):
            new = upstreams(f"v{version}")
            await apply_and_confirm(envoy.writer, admin, table(port, current, new))
            await apply_and_confirm(envoy.writer, admin, table(port, new, draining=current))
            assert await admin.wait_drained(CLUSTER, "127.0.0.1", current.port, timeout_s=10)
            await apply_and_confirm(envoy.writer, admin, table(port, new))
            current.stop()
            current = new
    print(f"make-before-break: {load.ok} ok, {load.failed} failed over {SWITCHES} switches")
    assert load.failed == 0, load.errors
    assert load.ok > 200
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(10):
        connection.request("GET", "/")
        assert connection.getresponse().read() == f"v{SWITCHES}".encode()
    connection.close()


async def test_stopping_the_old_process_first_fails_requests(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    """The wrong order: stop old, then (as soon as the agent notices) point Envoy at new."""
    admin, port = envoy.supervisor.admin, free_port()
    current = upstreams("v0")
    await apply_and_confirm(envoy.writer, admin, table(port, current))
    with under_load(port) as load:
        for version in range(1, SWITCHES + 1):
            new = upstreams(f"v{version}")
            current.stop()
            await apply_and_confirm(envoy.writer, admin, table(port, new))
            current = new
    print(f"old stopped first: {load.ok} ok, {load.failed} failed; e.g. {load.errors[:2]}")
    assert load.failed > 0


async def test_killed_endpoint_is_covered_by_retries_to_another_host(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    """kill -9 of one of two endpoints, Envoy config untouched: idempotent requests that hit
    the dead one (reset in flight, then connection refused) are retried on the other host."""
    admin, port = envoy.supervisor.admin, free_port()
    first, second = upstreams("a"), upstreams("b")
    await apply_and_confirm(envoy.writer, admin, table(port, first, second))
    with under_load(port, posts=False) as load:
        await asyncio.sleep(0.5)
        first.process.kill()
        first.process.wait()
        await asyncio.sleep(1.0)
    escaped = CLUSTER.replace(".", "[.]")
    stats = await admin.stats(rf"^cluster[.]{escaped}[.]upstream_rq_retry(_overflow|_success)?$")
    print(f"one endpoint killed: {load.ok} ok, {load.failed} failed, retries {stats}")
    assert load.failed == 0, load.errors
    assert stats[f"cluster.{CLUSTER}.upstream_rq_retry"] > 0  # retried: this run could fail


async def test_route_switch_between_versions_is_atomic_and_fails_nothing(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    """Blue-green promotion and undo: the listener's route moves between two version clusters
    (the old cluster removed last); after each confirm, every response is the new version."""
    admin, port = envoy.supervisor.admin, free_port()
    blue, green = upstreams("blue"), upstreams("green")

    def serving(active: Upstream, *warm: Upstream) -> RoutingTable:
        clusters = tuple(
            UpstreamCluster(f"web.{u.name}", (Endpoint("127.0.0.1", u.port),))
            for u in (active, *warm)
        )
        route = Route(Destination.single(f"web.{active.name}"))
        return RoutingTable((ServiceListener("web", port, (route,)),), clusters)

    await apply_and_confirm(envoy.writer, admin, serving(blue))
    with under_load(port) as load:
        for active, other in ((green, blue), (blue, green), (green, blue)):
            await asyncio.sleep(0.3)  # traffic before each switch
            await apply_and_confirm(envoy.writer, admin, serving(active, other))  # switch, warm
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            for _ in range(20):
                connection.request("GET", "/")
                assert connection.getresponse().read() == active.name.encode()
            connection.close()
        await apply_and_confirm(envoy.writer, admin, serving(green))  # old version removed
        await asyncio.sleep(0.3)
    print(f"route switches: {load.ok} ok, {load.failed} failed")
    assert load.failed == 0, load.errors
