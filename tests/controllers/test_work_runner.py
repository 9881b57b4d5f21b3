"""The work queue and the runner, driven by a fake clock: dedup, one worker per key,
per-key exponential backoff, requeue-after, terminal errors."""

from __future__ import annotations

import asyncio

import pytest

from shoal.controllers.clock import FakeClock
from shoal.controllers.queue import Key, WorkQueue
from shoal.controllers.runner import Controller, Result, TerminalError

A: Key = ("Pod", "default", "a")
B: Key = ("Pod", "default", "b")


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_queue_dedups_waiting_keys() -> None:
    queue = WorkQueue(FakeClock())
    queue.add(A)
    queue.add(A)
    queue.add(B)
    assert len(queue) == 2
    assert await queue.get() == A
    assert await queue.get() == B


async def test_key_added_while_processing_waits_for_done() -> None:
    queue = WorkQueue(FakeClock())
    queue.add(A)
    key = await queue.get()
    queue.add(A)
    assert len(queue) == 0  # not handed to a second worker
    queue.done(key)
    assert len(queue) == 1 and await queue.get() == A


async def test_backoff_doubles_per_key_and_forget_resets() -> None:
    queue = WorkQueue(FakeClock(), base_delay=0.1, max_delay=1.0)
    assert [queue.backoff(A) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert queue.backoff(B) == 0.1
    queue.forget(A)
    assert queue.backoff(A) == 0.1


async def test_add_after_fires_on_the_fake_clock() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock)
    queue.add_after(A, 5)
    await settle()
    await clock.advance(4.9)
    assert len(queue) == 0
    await clock.advance(0.2)
    assert len(queue) == 1


async def run_controller(controller: Controller) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    await settle()
    return stop, task


async def test_one_worker_per_key_and_latest_state_reconciled() -> None:
    clock = FakeClock()
    running: set[Key] = set()
    overlaps = 0
    calls: list[Key] = []
    release = asyncio.Event()

    async def reconcile(key: Key) -> Result | None:
        nonlocal overlaps
        if key in running:
            overlaps += 1
        running.add(key)
        calls.append(key)
        await release.wait()
        running.discard(key)
        return None

    controller = Controller("t", reconcile, clock=clock, workers=4)
    stop, task = await run_controller(controller)
    controller.enqueue(A)
    await settle()
    for _ in range(5):
        controller.enqueue(A)  # arrives while A is being reconciled
    controller.enqueue(B)
    await settle()
    assert sorted(calls) == [A, B] and overlaps == 0
    release.set()
    await settle()
    assert calls.count(A) == 2 and overlaps == 0  # the five adds collapsed into one re-run
    stop.set()
    await task


async def test_errors_back_off_then_succeed_and_terminal_errors_stop() -> None:
    clock = FakeClock()
    attempts: dict[Key, int] = {A: 0, B: 0}

    async def reconcile(key: Key) -> Result | None:
        attempts[key] += 1
        if key == B:
            raise TerminalError("invalid")
        if attempts[key] < 4:
            raise RuntimeError("flaky")
        return None

    controller = Controller("t", reconcile, clock=clock, base_delay=1.0)
    stop, task = await run_controller(controller)
    controller.enqueue(A)
    controller.enqueue(B)
    await settle()
    assert attempts == {A: 1, B: 1}
    await clock.advance(0.9)
    assert attempts[A] == 1
    await clock.advance(0.2)  # first retry after 1 s
    assert attempts[A] == 2
    await clock.advance(1.8)  # t=2.9
    assert attempts[A] == 2
    await clock.advance(0.4)  # then 2 s later (t=3.3)
    assert attempts[A] == 3
    await clock.advance(3.6)  # t=6.9
    assert attempts[A] == 3
    await clock.advance(0.6)  # then 4 s later: succeeds
    assert attempts[A] == 4
    assert controller.queue.failures(A) == 0
    await clock.advance(100)
    assert attempts == {A: 4, B: 1}  # no retry after success nor after a terminal error
    stop.set()
    await task


async def test_requeue_after() -> None:
    clock = FakeClock()
    calls = 0

    async def reconcile(key: Key) -> Result | None:
        nonlocal calls
        calls += 1
        return Result(requeue_after=30) if calls < 3 else None

    controller = Controller("t", reconcile, clock=clock)
    stop, task = await run_controller(controller)
    controller.enqueue(A)
    await settle()
    assert calls == 1
    await clock.advance(29)
    assert calls == 1
    await clock.advance(2)
    assert calls == 2
    await clock.advance(31)
    assert calls == 3
    await clock.advance(100)
    assert calls == 3
    stop.set()
    await task


@pytest.mark.parametrize("workers", [1, 3])
async def test_many_keys_all_processed(workers: int) -> None:
    seen: list[Key] = []

    async def reconcile(key: Key) -> Result | None:
        seen.append(key)
        await asyncio.sleep(0)
        return None

    controller = Controller("t", reconcile, clock=FakeClock(), workers=workers)
    stop, task = await run_controller(controller)
    keys = [("Pod", "default", str(i)) for i in range(50)]
    for key in keys:
        controller.enqueue(key)
    await settle()
    for _ in range(10):
        await settle()
    assert sorted(seen) == sorted(keys)
    stop.set()
    await task
