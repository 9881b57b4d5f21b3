"""OomDemotion: when a pod's run is demoted (pure record keeping with a fake clock, and the watch
against a stand-in cgroup that counts OOM kills and demotions)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from shoal.agent.sandbox import demotion
from shoal.agent.sandbox.cgroups import CgroupError
from shoal.agent.sandbox.demotion import DEMOTION_SECONDS, OomDemotion


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StandIn:
    """What the watch uses of a PodCgroup: the OOM counter and demote(), which moves a process
    from the `placed`-th call on, once (later calls find nothing left to move)."""

    kills: int = 0
    placed: int = 1
    calls: int = 0

    def oom_kills(self) -> int:
        return self.kills

    def demote(self) -> bool:
        self.calls += 1
        return self.calls == self.placed


def test_a_kill_is_recent_for_the_demotion_window_only() -> None:
    clock = Clock()
    table = OomDemotion(clock)
    assert not table.recently_killed("a")
    table.record("a")
    clock.now += DEMOTION_SECONDS
    assert table.recently_killed("a")
    clock.now += 1
    assert not table.recently_killed("a")


def test_recording_drops_expired_records_of_other_pods() -> None:
    clock = Clock()
    table = OomDemotion(clock)
    table.record("gone")
    clock.now += DEMOTION_SECONDS + 1
    table.record("b")
    assert list(table._last_kill) == ["b"]


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demotion, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(demotion, "PLACEMENT_POLL_SECONDS", 0.001)


async def test_watch_demotes_at_the_first_kill_and_records_it(fast_polls: None) -> None:
    heard: list[tuple[str, str]] = []
    table, cgroup = OomDemotion(notify=lambda uid, why: heard.append((uid, why))), StandIn()
    watch = asyncio.create_task(table.watch("a", "pod a", cgroup))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert cgroup.calls == 0 and not table.recently_killed("a")
    cgroup.kills = 1
    await asyncio.sleep(0.05)
    watch.cancel()
    assert table.recently_killed("a")
    assert heard == [("a", "the kernel OOM-killed 1 of its processes")]
    assert cgroup.calls > 1  # demoted, then every poll moves whatever joined since


async def test_a_run_after_a_recent_kill_is_demoted_at_once(fast_polls: None) -> None:
    heard: list[tuple[str, str]] = []
    table, cgroup = OomDemotion(notify=lambda uid, why: heard.append((uid, why))), StandIn()
    table.record("a")
    watch = asyncio.create_task(table.watch("a", "pod a", cgroup))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    watch.cancel()
    assert cgroup.calls == 1
    assert heard == [("a", "its last run was OOM-killed")]  # told once, for the Event


async def test_a_recent_kill_waits_for_the_new_run_to_be_placed(fast_polls: None) -> None:
    table, cgroup = OomDemotion(), StandIn(placed=4)  # nothing to move for 3 tries
    table.record("a")
    watch = asyncio.create_task(table.watch("a", "pod a", cgroup))  # type: ignore[arg-type]
    await asyncio.sleep(0.005)
    watch.cancel()
    assert cgroup.calls == 4  # stopped trying at short intervals once it moved one


async def test_other_pods_are_left_alone(fast_polls: None) -> None:
    table, cgroup = OomDemotion(), StandIn()
    table.record("other")
    watch = asyncio.create_task(table.watch("a", "pod a", cgroup))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    watch.cancel()
    assert cgroup.calls == 0


@dataclass
class Refusing(StandIn):
    """A cgroup that cannot be demoted (e.g. a kernel without cpu.idle)."""

    def demote(self) -> bool:
        self.calls += 1
        raise CgroupError("this kernel has no cpu.idle")


async def test_a_failed_demotion_is_tried_once_per_run(fast_polls: None) -> None:
    table, cgroup = OomDemotion(), Refusing(kills=0)
    watch = asyncio.create_task(table.watch("a", "pod a", cgroup))  # type: ignore[arg-type]
    await asyncio.sleep(0.02)
    cgroup.kills = 1
    await asyncio.sleep(0.05)
    assert watch.done()  # gave up after the one warning instead of retrying every poll
    assert cgroup.calls == 1 and table.recently_killed("a")
