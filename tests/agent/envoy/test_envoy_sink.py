"""The in-memory Envoy sink fake behaves like the real one where the runner can tell."""

from __future__ import annotations

import pytest

from shoal.agent.envoy import (
    Destination,
    Endpoint,
    EnvoySink,
    MemoryEnvoySink,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
)


def table(port: int, draining: bool = False) -> RoutingTable:
    return RoutingTable(
        (ServiceListener("l", 80, (Route(Destination.single("c")),)),),
        (UpstreamCluster("c", (Endpoint("127.0.0.1", port, draining=draining),)),),
    )


async def test_memory_sink_records_changes_and_drains_on_demand() -> None:
    sink = MemoryEnvoySink()
    as_protocol: EnvoySink = sink  # the fake satisfies the protocol (checked by mypy on src)
    first = await as_protocol.apply(table(1))
    assert not first.is_empty()
    assert (await sink.apply(table(1))).is_empty()  # unchanged: nothing written
    await sink.apply(table(1, draining=True))
    assert sink.current == table(1, draining=True) and len(sink.tables) == 2
    sink.in_flight[("c", "127.0.0.1", 1)] = 2
    assert not await sink.wait_drained("c", "127.0.0.1", 1, timeout_s=0.1)
    sink.in_flight[("c", "127.0.0.1", 1)] = 0
    assert await sink.wait_drained("c", "127.0.0.1", 1, timeout_s=0.1)


async def test_memory_sink_refuses_what_the_real_one_refuses() -> None:
    bad = RoutingTable((ServiceListener("l", 80, (Route(Destination.single("nope")),)),))
    with pytest.raises(ValueError, match="unknown cluster"):
        await MemoryEnvoySink().apply(bad)
