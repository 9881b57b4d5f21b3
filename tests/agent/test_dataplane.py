"""DataPlane with the in-memory Envoy sink: a table reaches Envoy once per burst of changes,
Ready waits for Envoy's confirmation, the drain waits for a fresh table and for in-flight
requests, and a failed apply is retried."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from agent_api import eventually

from shoal.agent.dataplane import DataPlane
from shoal.agent.envoy import (
    AppliedVersions,
    Destination,
    Endpoint,
    MemoryEnvoySink,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
)
from shoal.agent.routing import Membership, Placement

CLUSTER = "default.web.all"


def table(endpoints: dict[str, tuple[int, bool]]) -> tuple[RoutingTable, Membership]:
    """uid -> (port, draining)."""
    cluster = UpstreamCluster(
        CLUSTER, tuple(Endpoint("127.0.0.1", p, draining=d) for p, d in endpoints.values())
    )
    listener = ServiceListener("default.web", 8080, (Route(Destination.single(CLUSTER)),))
    membership: Membership = {
        uid: (Placement(CLUSTER, "127.0.0.1", port, "draining" if d else "serving"),)
        for uid, (port, d) in endpoints.items()
    }
    return RoutingTable((listener,), (cluster,)), membership


class Source:
    def __init__(self) -> None:
        self.endpoints: dict[str, tuple[int, bool]] = {}
        self.calls = 0

    def __call__(self) -> tuple[RoutingTable, Membership]:
        self.calls += 1
        return table(self.endpoints)


class SlowSink(MemoryEnvoySink):
    """Applies take a while, and can be told to fail."""

    failures: int = 0

    async def apply(self, t: RoutingTable) -> AppliedVersions:
        await asyncio.sleep(0.02)
        if self.failures:
            self.failures -= 1
            raise OSError("admin API unreachable")
        return await super().apply(t)

    async def wait_drained(self, cluster: str, host: str, port: int, timeout_s: float) -> bool:
        """As Envoy's rq_active is polled: until nothing is in flight, or the time is up."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.in_flight.get((cluster, host, port), 0):
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True


@pytest.fixture
async def plane() -> AsyncIterator[tuple[DataPlane, Source, SlowSink]]:
    sink, source = SlowSink(), Source()
    dataplane = DataPlane(sink, source)
    stop = asyncio.Event()
    task = asyncio.create_task(dataplane.run(stop))
    yield dataplane, source, sink
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_burst_of_changes_is_computed_and_applied_once(
    plane: tuple[DataPlane, Source, SlowSink],
) -> None:
    dataplane, source, sink = plane
    source.endpoints = {"a": (20001, False)}
    dataplane.invalidate()
    await eventually(lambda: dataplane.syncs == 1)
    for port in range(20002, 20012):
        source.endpoints[f"p{port}"] = (port, False)
        dataplane.invalidate()
    await eventually(lambda: dataplane.syncs == 2)
    await asyncio.sleep(0.1)
    assert (source.calls, dataplane.syncs, len(sink.tables)) == (2, 2, 2)
    assert len(sink.tables[-1].clusters[0].endpoints) == 11


async def test_wait_serving_returns_once_envoy_confirmed_the_pod(
    plane: tuple[DataPlane, Source, SlowSink],
) -> None:
    dataplane, source, _sink = plane
    assert not await dataplane.wait_serving("a", 0.05), "nothing routes to it yet"
    source.endpoints = {"a": (20001, False)}
    waiting = asyncio.create_task(dataplane.wait_serving("a", 5))
    dataplane.invalidate()
    assert await waiting
    assert dataplane.confirmed["a"][0].state == "serving"


async def test_wait_synced_returns_after_the_next_confirmed_sync_not_a_failed_one(
    plane: tuple[DataPlane, Source, SlowSink],
) -> None:
    dataplane, _source, sink = plane
    assert not await dataplane.wait_synced(dataplane.syncs, 0.05), "no sync asked for"
    before = dataplane.syncs
    sink.failures = 1  # the first apply fails (Envoy not up yet), the retry is confirmed
    waiting = asyncio.create_task(dataplane.wait_synced(before, 5))
    dataplane.invalidate()
    assert await waiting
    assert dataplane.syncs == before + 1 and sink.failures == 0


async def test_drain_waits_for_a_draining_table_and_for_in_flight_requests(
    plane: tuple[DataPlane, Source, SlowSink],
) -> None:
    dataplane, source, sink = plane
    source.endpoints = {"a": (20001, False)}
    dataplane.invalidate()
    await eventually(lambda: "a" in dataplane.confirmed)
    sink.in_flight[(CLUSTER, "127.0.0.1", 20001)] = 2
    source.endpoints = {"a": (20001, True)}  # the runner's view: deleting -> draining
    draining = asyncio.create_task(dataplane.drain("a", 5))
    await eventually(lambda: dataplane.confirmed["a"][0].state == "draining")
    await asyncio.sleep(0.05)
    assert not draining.done(), "requests are still in flight"
    sink.in_flight.clear()
    assert await asyncio.wait_for(draining, 5)


async def test_drain_gives_up_after_its_time_with_requests_in_flight(
    plane: tuple[DataPlane, Source, SlowSink],
) -> None:
    dataplane, source, sink = plane
    source.endpoints = {"a": (20001, True)}
    sink.in_flight[(CLUSTER, "127.0.0.1", 20001)] = 1
    assert not await dataplane.drain("a", 0.3)


async def test_drain_ignores_a_confirmed_table_computed_before_it_began(
    plane: tuple[DataPlane, Source, SlowSink],
) -> None:
    dataplane, source, sink = plane
    dataplane.invalidate()
    await eventually(lambda: dataplane.syncs == 1)
    assert "a" not in dataplane.confirmed, "the confirmed table does not list the pod..."
    source.endpoints = {"a": (20001, False)}  # ...but the table being applied will
    dataplane.invalidate()
    source.endpoints = {"a": (20001, True)}
    assert await dataplane.drain("a", 5)
    assert sink.tables[-1].clusters[0].endpoints == (Endpoint("127.0.0.1", 20001, draining=True),)


async def test_a_failed_apply_is_retried_and_reported(
    plane: tuple[DataPlane, Source, SlowSink],
) -> None:
    dataplane, source, sink = plane
    sink.failures = 2
    source.endpoints = {"a": (20001, False)}
    dataplane.invalidate()
    await eventually(lambda: dataplane.last_error is not None)
    await eventually(lambda: dataplane.syncs == 1)
    assert dataplane.last_error is None and "a" in dataplane.confirmed


async def test_listeners_envoy_already_holds_are_kept_though_their_port_is_taken() -> None:
    """After an agent restart the adopted Envoy holds the Services' ports itself."""
    sink, source = SlowSink(), Source()
    dataplane = DataPlane(
        sink, source, port_probe=lambda _host, _port: False, held={("127.0.0.1", 8080)}
    )
    stop = asyncio.Event()
    task = asyncio.create_task(dataplane.run(stop))
    dataplane.invalidate()
    await eventually(lambda: dataplane.syncs == 1)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [listener.port for listener in sink.tables[-1].listeners] == [8080]


async def second_change_applied(
    envoy_has_first: bool, urgent: bool = False, waiting_first: bool = False
) -> bool:
    """Sync once, change something, and say whether the change reached the sink within 0.5 s
    while the burst interval is 30 s. `waiting_first`: an ordinary change came 0.2 s before
    it (the data plane is waiting for more of its burst)."""
    sink, source = SlowSink(), Source()
    if envoy_has_first:
        sink.tables.append(table({})[0])  # so the first sync changes nothing
    dataplane = DataPlane(sink, source, min_interval=30.0)
    stop = asyncio.Event()
    task = asyncio.create_task(dataplane.run(stop))
    try:
        dataplane.invalidate()
        await eventually(lambda: dataplane.syncs == 1)
        if waiting_first:
            dataplane.invalidate()
            await asyncio.sleep(0.2)
        source.endpoints = {"a": (20001, False)}
        dataplane.invalidate(urgent=urgent)
        with contextlib.suppress(AssertionError, TimeoutError):
            await eventually(lambda: dataplane.syncs == 2, seconds=0.5)
        return any(t.clusters[0].endpoints for t in sink.tables)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_change_right_after_a_sync_that_changed_envoy_waits_for_the_burst() -> None:
    assert not await second_change_applied(envoy_has_first=False)


async def test_a_change_after_a_sync_that_changed_nothing_is_not_held_back() -> None:
    """A no-op sync (a status write that moves no route, like the promote annotation just
    before its switch) must not delay the next change: it was most of a switch's latency."""
    assert await second_change_applied(envoy_has_first=True)


async def test_a_traffic_switch_is_not_held_back_by_a_burst() -> None:
    """An urgent change (promote, undo, abort) goes at once, also when it comes while the
    data plane already waits for a burst to gather."""
    assert await second_change_applied(envoy_has_first=False, urgent=True)
    assert await second_change_applied(envoy_has_first=False, urgent=True, waiting_first=True)
    assert not await second_change_applied(envoy_has_first=False, waiting_first=True)
