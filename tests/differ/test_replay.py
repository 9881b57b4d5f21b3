"""The replayer: three replays per sample with the shadow header, round-robin instances,
method filtering, a bounded queue that drops and counts under overload."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from differ_stubs import StubUpstream, json_answer

from shoal.differ.aggregate import Aggregator
from shoal.differ.http import MirroredRequest, UpstreamPool
from shoal.differ.replay import Replayer, replay_headers
from shoal.differ.targets import Instance, Targets


def priced(price: float) -> Any:
    def answer(method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        return json_answer({"price": price, "requestId": uuid.uuid4().hex})

    return answer


def mirrored(method: str = "GET", target: str = "/price") -> MirroredRequest:
    headers = (("host", "shop"), ("x-envoy-internal", "true"), ("connection", "keep-alive"))
    return MirroredRequest(method, target, (*headers, ("x-user", "u1")), b"")


@pytest.fixture
async def stubs() -> AsyncIterator[list[StubUpstream]]:
    started = [
        await StubUpstream(priced(19.99)).start(),
        await StubUpstream(priced(19.99)).start(),
        await StubUpstream(priced(20.0)).start(),
    ]
    yield started
    for stub in started:
        await stub.close()


def test_replay_headers_mark_the_copy_and_drop_hop_by_hop() -> None:
    headers = dict(replay_headers(mirrored().headers))
    assert headers == {"host": "shop", "x-user": "u1", "x-shoal-shadow": "1"}
    spoofed = replay_headers((("x-shoal-shadow", "0"),))
    assert spoofed == (("x-shoal-shadow", "1"),)


async def test_each_sample_goes_to_two_primaries_and_the_candidate(
    stubs: list[StubUpstream],
) -> None:
    first, second, candidate = stubs
    aggregator = Aggregator()
    replayer = Replayer(aggregator, UpstreamPool())
    replayer.set_targets(Targets((first.address, second.address), (candidate.address,)))
    for _ in range(4):
        await replayer.replay(mirrored())
    assert len(first.received) == 4 and len(second.received) == 4  # alternating roles
    assert len(candidate.received) == 4
    assert all(r.headers["x-shoal-shadow"] == "1" for r in candidate.received)
    status = aggregator.status()
    assert (status.compared, status.differing) == (4, 4)
    assert [f.path for f in status.endpoints[0].fields] == ["price"]
    assert [n.path for n in status.endpoints[0].noise] == ["requestId"]


async def test_a_single_primary_answers_twice(stubs: list[StubUpstream]) -> None:
    first, _, candidate = stubs
    aggregator = Aggregator()
    replayer = Replayer(aggregator, UpstreamPool())
    replayer.set_targets(Targets((first.address,), (candidate.address,)))
    await replayer.replay(mirrored())
    assert len(first.received) == 2
    assert [n.path for n in aggregator.status().endpoints[0].noise] == ["requestId"]


async def test_without_instances_samples_are_skipped() -> None:
    aggregator = Aggregator()
    await Replayer(aggregator, UpstreamPool()).replay(mirrored())
    assert aggregator.skipped == 1 and aggregator.status().compared == 0


async def test_only_listed_methods_are_replayed(stubs: list[StubUpstream]) -> None:
    first, second, candidate = stubs
    aggregator = Aggregator()
    replayer = Replayer(aggregator, UpstreamPool(), methods=["get"])
    replayer.set_targets(Targets((first.address, second.address), (candidate.address,)))
    replayer.start()
    try:
        replayer.offer(mirrored("POST"))
        replayer.offer(mirrored("GET"))
        for _ in range(200):
            if aggregator.status().compared == 1:
                break
            await asyncio.sleep(0.01)
    finally:
        await replayer.stop()
    assert aggregator.skipped == 1
    assert aggregator.status().compared == 1
    assert [r.method for r in candidate.received] == ["GET"]


async def test_overload_drops_and_counts_instead_of_queueing_without_bound() -> None:
    aggregator = Aggregator()
    replayer = Replayer(aggregator, UpstreamPool(), queue_size=5)  # workers not started
    for _ in range(12):
        replayer.offer(mirrored())
    assert replayer.queue.qsize() == 5
    assert aggregator.dropped == 7
    assert replayer.received == 12


async def test_a_mirror_of_a_named_port_is_replayed_to_that_port_of_each_instance(
    stubs: list[StubUpstream],
) -> None:
    default, admin, other = stubs
    instance = Instance("127.0.0.1", default.port, (("admin", admin.port),))
    aggregator = Aggregator()
    replayer = Replayer(aggregator, UpstreamPool())
    replayer.set_targets(Targets((instance,), (instance,)))
    await replayer.replay(replace(mirrored(), port="admin"))
    await replayer.replay(mirrored())
    assert (len(admin.received), len(default.received), len(other.received)) == (3, 3, 0)
    await replayer.replay(replace(mirrored(), port="metrics"))  # no such port: not guessed
    assert aggregator.skipped == 1 and aggregator.status().compared == 2


def test_samples_beyond_the_rate_are_dropped_and_counted() -> None:
    now = [100.0]
    aggregator = Aggregator()
    replayer = Replayer(aggregator, UpstreamPool(), max_rate=4, clock=lambda: now[0])
    for _ in range(10):  # a burst: one second's worth (4) is taken
        replayer.offer(mirrored())
    assert (replayer.queue.qsize(), aggregator.dropped) == (4, 6)
    now[0] += 0.5  # half a second refills 2
    for _ in range(5):
        replayer.offer(mirrored())
    assert (replayer.queue.qsize(), aggregator.dropped) == (6, 9)
    now[0] += 60  # a long pause refills one second's worth, not a minute's
    for _ in range(10):
        replayer.offer(mirrored())
    assert (replayer.queue.qsize(), aggregator.dropped) == (10, 15)
    replayer.offer(mirrored("POST"))  # not a compared method: skipped before the rate
    assert (aggregator.skipped, aggregator.dropped) == (1, 15)
