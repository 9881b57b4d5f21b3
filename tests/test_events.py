"""EventRecorder against a real API server: one Event per distinct happening, repeats
coalesced (count, lastTimestamp), similar events combined, recording never blocks."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from shoal.api.event import Event, ObjectReference
from shoal.api.pod import Pod, PodSpec
from shoal.client import AsyncClient
from shoal.events import EventRecorder, _Pending, bump_time, due
from shoal.server.serve import serve_api
from shoal.store.memory import MemoryStore


@pytest.fixture
async def api() -> AsyncIterator[AsyncClient]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    ready = asyncio.Event()
    server = asyncio.create_task(serve_api(MemoryStore(), "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    async with AsyncClient(f"http://127.0.0.1:{port}") as client:
        yield client
    server.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(server, 10)


async def events(api: AsyncClient) -> list[Event]:
    return sorted((await api.list(Event, "default")).items, key=lambda e: e.message)


async def test_repeats_are_coalesced(api: AsyncClient) -> None:
    pod = await api.create(Pod.new("web-1", spec=PodSpec(command=["x"])))
    recorder = EventRecorder(api, "test-controller")
    recorder.record(pod, "Warning", "BackOff", "restarting failed container")
    await recorder.flush()
    (first,) = await events(api)
    assert first.count == 1 and first.type == "Warning" and first.reason == "BackOff"
    assert first.involved_object.uid == pod.metadata.uid
    assert first.source is not None and first.source.component == "test-controller"
    recorder.record(pod, "Warning", "BackOff", "restarting failed container")
    recorder.record(pod, "Warning", "BackOff", "restarting failed container")
    recorder.record(pod, "Normal", "Started", "started the process")
    await recorder.flush()
    listed = await events(api)
    assert [(e.reason, e.count) for e in listed] == [("BackOff", 3), ("Started", 1)]
    backoff = listed[0]
    assert backoff.metadata.name == first.metadata.name
    assert backoff.last_timestamp is not None and first.last_timestamp is not None
    assert backoff.last_timestamp > first.last_timestamp
    assert backoff.first_timestamp == first.first_timestamp
    await recorder.close()


async def test_many_similar_events_are_combined(api: AsyncClient) -> None:
    pod = await api.create(Pod.new("web-1", spec=PodSpec(command=["x"])))
    recorder = EventRecorder(api, "test-controller")
    for i in range(25):
        recorder.record(pod, "Normal", "SuccessfulCreate", f"Created pod: web-{i:02}")
    await recorder.flush()
    listed = await events(api)
    combined = [e for e in listed if e.message.startswith("(combined from similar events)")]
    separate = [e for e in listed if e not in combined]
    assert len(separate) == 10 and len(combined) == 1
    assert combined[0].count == 15
    assert combined[0].message.endswith("Created pod: web-24")
    assert sum(e.count for e in listed) == 25
    await recorder.close()


async def test_record_does_not_wait_for_the_server(api: AsyncClient) -> None:
    pod = await api.create(Pod.new("web-1", spec=PodSpec(command=["x"])))
    async with AsyncClient("http://127.0.0.1:9") as nowhere:  # nothing listens on port 9
        recorder = EventRecorder(nowhere, "test-controller")
        recorder.record(pod, "Normal", "Reason", "message")  # returns at once, no exception
        await recorder.close(grace_seconds=5)


async def test_a_repeat_of_a_written_event_waits_for_its_interval_and_merges(
    api: AsyncClient,
) -> None:
    pod = await api.create(Pod.new("web-1", spec=PodSpec(command=["x"])))
    recorder = EventRecorder(api, "agent")
    recorder.record(pod, "Warning", "Error", "process ended (exit code 3)")
    await asyncio.sleep(0.5)  # the first occurrence is written at once, without a flush
    (first,) = await events(api)
    for _ in range(3):  # a crash loop: repeats within the interval wait and merge
        recorder.record(pod, "Warning", "Error", "process ended (exit code 3)")
    recorder.record(pod, "Normal", "Killing", "stopped")  # a new one is not held back by them
    await asyncio.sleep(0.5)
    assert [(e.reason, e.count) for e in await events(api)] == [("Error", 1), ("Killing", 1)]
    await recorder.flush()  # writes the held bump now
    listed = await events(api)
    assert [(e.reason, e.count) for e in listed] == [("Error", 4), ("Killing", 1)]
    assert listed[0].metadata.name == first.metadata.name
    await recorder.close()


def test_due_picks_the_oldest_key_whose_interval_passed_or_says_how_long_to_wait() -> None:
    def item(not_before: float) -> _Pending:
        when = datetime(2026, 1, 1, tzinfo=UTC)
        return _Pending(ObjectReference(kind="Pod", name="p"), "Normal", "R", "m", 1, when, when,
                        not_before)  # fmt: skip

    pending = OrderedDict([(("a", "", "", ""), item(20.0)), (("b", "", "", ""), item(15.0))])
    assert due(pending, 10.0, hurry=False) == (None, 5.0)
    assert due(pending, 16.0, hurry=False) == (("b", "", "", ""), 0.0)
    assert due(pending, 10.0, hurry=True) == (("a", "", "", ""), 0.0)
    assert bump_time(None) == 0.0 and bump_time(100.0) > 100.0
