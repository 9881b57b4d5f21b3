"""podwrites: a pod's status changes coalesce (latest state wins, one request in flight per
pod), finalizer changes keep their place in the order, and readiness changes are urgent.

The pure decisions are tested directly; `PodWrites` runs against a fake API client whose writes
can be held in flight, so that what queues meanwhile is visible."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import cast

from shoal.agent import podstatus
from shoal.agent.drivers.base import ExitStatus, TaskHandle
from shoal.agent.podwrites import (
    PodWrites,
    _FinalizerChange,
    _StatusChange,
    coalesce,
    is_urgent,
    next_batch,
)
from shoal.agent.writeslots import WriteSlots
from shoal.api.errors import Conflict
from shoal.api.meta import ObjectMeta
from shoal.api.pod import Pod, PodSpec, PodStatus
from shoal.client import AsyncClient
from shoal.controllers.informer import Informer

HANDLE = TaskHandle("process", "uid-1", 4242, 4242, 1700000000.5, 1700000000.5)
EXIT = ExitStatus(3, None, "Error", 1700000000.5, 1700000001.0, "")


def run_with(restarts: int) -> partial[None]:
    return partial(
        podstatus.running, handle=HANDLE, ports={}, primary=None, address="127.0.0.1",
        restart_count=restarts,
    )  # fmt: skip


def crash(status: PodStatus) -> None:
    podstatus.exited(status, EXIT)
    podstatus.waiting(status, podstatus.CRASH_LOOP, "back-off 1s")


class FakeApi:
    """update_status/update/get over one stored pod; `hold` keeps writes in flight."""

    def __init__(self, pod: Pod) -> None:
        self.stored = pod
        self.hold = asyncio.Event()
        self.hold.set()
        self.writes: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.conflicts = 0

    async def _write(self, kind: str, pod: Pod) -> Pod:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.hold.wait()
            if self.conflicts:
                self.conflicts -= 1
                self.stored = self._bump(self.stored)  # someone else wrote meanwhile
                raise Conflict("the object has been modified")
            if pod.metadata.resource_version != self.stored.metadata.resource_version:
                raise Conflict("stale resourceVersion")
            self.writes.append(kind)
            self.stored = self._bump(pod)
            return self.stored
        finally:
            self.in_flight -= 1

    @staticmethod
    def _bump(pod: Pod) -> Pod:
        version = str(int(pod.metadata.resource_version or 0) + 1)
        meta = pod.metadata.model_copy(update={"resource_version": version})
        return pod.model_copy(update={"metadata": meta})

    async def update_status(self, pod: Pod) -> Pod:
        return await self._write("status", pod)

    async def update(self, pod: Pod) -> Pod:
        return await self._write("metadata", pod)

    async def get(self, cls: type[Pod], name: str, namespace: str) -> Pod:
        return self.stored


def rig(
    slots: WriteSlots | None = None, linger: float = 0.0
) -> tuple[FakeApi, PodWrites, list[Pod]]:
    pod = Pod(
        metadata=ObjectMeta(name="p", namespace="default", uid="uid-1", resource_version="1"),
        spec=PodSpec(command=["true"]),
    )
    api = FakeApi(pod)
    client = cast(AsyncClient, api)
    seen: list[Pod] = []
    writes = PodWrites(client, Informer(client, Pod), pod, seen.append, slots=slots, linger=linger)
    return api, writes, seen


# -- pure decisions -------------------------------------------------------------------------------
def test_coalesce_applies_every_change_in_order_to_a_copy() -> None:
    before = PodStatus()
    after = coalesce(before, [run_with(0), crash, run_with(1), crash])
    assert before == PodStatus()
    assert (after.restart_count, after.pid, after.reason) == (1, None, podstatus.CRASH_LOOP)
    assert after.last_state is not None and after.last_state.exit_code == 3


def test_readiness_and_phase_changes_are_urgent_crash_loop_bookkeeping_is_not() -> None:
    running = coalesce(PodStatus(), [run_with(0)])
    ready = coalesce(running, [podstatus.ready])
    assert is_urgent(PodStatus(), running)  # Pending -> Running
    assert is_urgent(running, ready)
    assert is_urgent(ready, coalesce(ready, [crash]))  # ready -> not ready
    looping = coalesce(running, [crash])
    assert not is_urgent(looping, coalesce(looping, [run_with(5), crash]))
    assert not is_urgent(looping, coalesce(looping, [run_with(5)]))  # CrashLoopBackOff gone
    failure = ExitStatus(None, None, "ExecutableNotFound", 1.0, 1.0, "serve: not found")
    failing = coalesce(running, [partial(podstatus.start_failed, failure=failure)])
    assert is_urgent(running, failing)  # why it cannot run: the user waits on it
    again = partial(podstatus.waiting, reason="ExecutableNotFound", message="back-off 1s")
    assert not is_urgent(failing, coalesce(failing, [again]))  # a start-failure loop


def test_a_batch_is_the_status_changes_up_to_a_finalizer_change_or_that_change_alone() -> None:
    loop = asyncio.new_event_loop()
    try:
        a, b, c = (_StatusChange(crash, loop.create_future()) for _ in range(3))
        fin = _FinalizerChange("f", True, loop.create_future())
        assert next_batch([a, b, fin, c]) == [a, b]
        assert next_batch([fin, c]) == [fin]
        assert next_batch([]) == []
    finally:
        loop.close()


# -- the writer ----------------------------------------------------------------------------------
async def test_changes_queued_behind_a_write_in_flight_go_in_one_write() -> None:
    api, writes, seen = rig()
    api.hold.clear()
    first = writes.status(run_with(0))
    await asyncio.sleep(0.01)  # the first write is in flight now
    later = [writes.status(m) for m in (crash, run_with(1), crash, run_with(2))]
    api.hold.set()
    await asyncio.gather(first, *later)
    assert api.writes == ["status", "status"]
    assert api.most_in_flight == 1
    final = api.stored.status
    assert (final.restart_count, final.pid, final.phase) == (2, HANDLE.pid, "Running")
    assert seen[-1].status == final and writes.latest().status == final


async def test_a_restart_lingers_for_the_next_change_which_goes_with_it() -> None:
    api, writes, _ = rig(linger=30.0)
    api.stored.status = coalesce(PodStatus(), [run_with(0), crash])
    restarted = writes.status(run_with(1), linger=True)  # routine, likely superseded soon
    await asyncio.sleep(0.05)
    assert api.writes == [] and not restarted.done()
    crashed = writes.status(crash)  # routine, but not lingering: both go now, in one write
    await asyncio.wait_for(asyncio.gather(restarted, crashed), 5)
    assert api.writes == ["status"]
    final = api.stored.status
    assert (final.restart_count, final.pid, final.reason) == (1, None, podstatus.CRASH_LOOP)


async def test_an_urgent_change_cuts_a_linger_short() -> None:
    api, writes, _ = rig(linger=30.0)
    api.stored.status = coalesce(PodStatus(), [run_with(0), crash])
    restarted = writes.status(run_with(1), linger=True)
    await asyncio.sleep(0.05)
    ready = writes.status(podstatus.ready)
    await asyncio.wait_for(asyncio.gather(restarted, ready), 5)
    assert api.writes == ["status"]
    assert (api.stored.status.restart_count, api.stored.status.ready) == (1, True)


async def test_a_lingering_change_alone_is_written_after_the_linger() -> None:
    api, writes, _ = rig(linger=0.05)
    api.stored.status = coalesce(PodStatus(), [run_with(0), crash])
    await asyncio.wait_for(writes.status(run_with(1), linger=True), 5)
    assert api.writes == ["status"] and api.stored.status.restart_count == 1


async def test_an_unchanged_status_is_not_written() -> None:
    api, writes, _ = rig()
    await writes.status(run_with(0))
    await writes.status(run_with(0))
    assert api.writes == ["status"]


async def test_a_finalizer_change_lands_between_the_status_changes_around_it() -> None:
    api, writes, _ = rig()
    api.hold.clear()
    done = [writes.status(run_with(0)), writes.finalizer("f", True), writes.status(crash)]
    await asyncio.sleep(0.01)
    api.hold.set()
    await asyncio.gather(*done)
    assert api.writes == ["status", "metadata", "status"]
    assert api.stored.metadata.finalizers == ["f"]
    assert await done[1] is True


async def test_a_conflict_applies_the_queued_changes_to_the_fresh_pod() -> None:
    api, writes, _ = rig()
    api.conflicts = 1
    await asyncio.gather(writes.status(run_with(0)), writes.status(crash))
    assert api.stored.status.restart_count == 0 and api.stored.status.pid is None
    assert api.stored.status.reason == podstatus.CRASH_LOOP


async def test_pods_share_the_slots_and_a_readiness_change_goes_first() -> None:
    slots = WriteSlots(1)
    api_a, busy, _ = rig(slots)
    api_b, looping, _ = rig(slots)
    api_c, readying, _ = rig(slots)
    for api in (api_a, api_b, api_c):
        api.stored.status = coalesce(PodStatus(), [run_with(0)])
    api_a.hold.clear()
    order: list[str] = []
    holding = busy.status(crash)
    await asyncio.sleep(0.01)  # pod a holds the only slot
    looping.status(crash).add_done_callback(lambda _: order.append("crash"))
    await asyncio.sleep(0.01)
    readying.status(podstatus.ready).add_done_callback(lambda _: order.append("ready"))
    await asyncio.sleep(0.01)
    api_a.hold.set()
    await holding
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert order == ["ready", "crash"]
