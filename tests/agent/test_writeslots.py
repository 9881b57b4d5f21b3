"""writeslots: at most `limit` holders at once; urgent waiters first; a cancelled waiter
neither blocks the queue nor keeps a slot."""

from __future__ import annotations

import asyncio

import pytest

from shoal.agent.writeslots import WriteSlots


async def hold(
    slots: WriteSlots, name: str, urgent: bool, log: list[str], gate: asyncio.Event
) -> None:
    async with slots.hold(urgent):
        log.append(name)
        await gate.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_no_more_than_limit_hold_at_once_and_urgent_goes_first() -> None:
    slots = WriteSlots(2)
    gate = asyncio.Event()
    log: list[str] = []
    tasks = [asyncio.create_task(hold(slots, f"a{i}", False, log, gate)) for i in range(4)]
    await settle()
    assert log == ["a0", "a1"] and slots.busy == 2 and slots.waiting == 2
    tasks.append(asyncio.create_task(hold(slots, "urgent", True, log, gate)))
    await settle()
    gate.set()
    await asyncio.gather(*tasks)
    assert log == ["a0", "a1", "urgent", "a2", "a3"]
    assert slots.busy == 0 and slots.waiting == 0


async def test_a_cancelled_waiter_is_skipped_and_keeps_no_slot() -> None:
    slots = WriteSlots(1)
    gate = asyncio.Event()
    log: list[str] = []
    first = asyncio.create_task(hold(slots, "first", False, log, gate))
    await settle()
    gone = asyncio.create_task(hold(slots, "gone", False, log, gate))
    last = asyncio.create_task(hold(slots, "last", False, log, gate))
    await settle()
    gone.cancel()
    gate.set()
    await asyncio.gather(first, last)
    assert log == ["first", "last"]
    assert gone.cancelled() and slots.busy == 0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        WriteSlots(0)
