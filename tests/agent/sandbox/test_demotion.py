"""OomDemotion: when a pod's run is demoted (pure record keeping with a fake clock, and the watch
against stand-ins for the cgroup and the agent's OOM killer)."""

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
    """What the watch uses of a PodCgroup: the kernel's OOM counter, demote() (which moves a
    process unless `empty`) and demote_before_start()."""

    kills: int = 0
    empty: bool = False
    calls: int = 0
    before_start: int = 0

    def oom_kills(self) -> int:
        return self.kills

    def demote(self) -> bool:
        self.calls += 1
        return not self.empty

    def demote_before_start(self) -> bool:
        self.before_start += 1
        return True


@dataclass
class Killer:
    """What the watch uses of an AgentOomKiller: `wait` for an event, `resolve` kills the
    `pending` victims."""

    pending: int = 0
    kills: int = 0
    resolved: int = 0
    released: bool = False

    async def wait(self, at_most: float) -> None:
        await asyncio.sleep(min(at_most, 0.005))

    async def resolve(self) -> bool:
        self.resolved += 1
        if not self.pending:
            return False
        self.pending -= 1
        self.kills += 1
        return True

    def release(self) -> None:
        self.released = True


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


def watching(table: OomDemotion, cgroup: StandIn, **options: object) -> asyncio.Task[None]:
    return asyncio.create_task(table.watch("a", "pod a", cgroup, **options))  # type: ignore[arg-type]


async def test_watch_demotes_once_at_the_first_kill_and_records_it(fast_polls: None) -> None:
    heard: list[tuple[str, str]] = []
    table, cgroup = OomDemotion(notify=lambda uid, why: heard.append((uid, why))), StandIn()
    watch = watching(table, cgroup)
    await asyncio.sleep(0.05)
    assert cgroup.calls == 0 and not table.recently_killed("a")
    cgroup.kills = 1
    await asyncio.sleep(0.03)
    cgroup.kills = 2
    await asyncio.sleep(0.05)
    watch.cancel()
    assert table.recently_killed("a")
    assert heard == [("a", "1 of its processes were OOM-killed at its memory limit")]
    assert cgroup.calls == 1  # moved once: nothing can join the old group afterwards


async def test_the_agents_own_kills_count_and_are_resolved_at_once(fast_polls: None) -> None:
    heard: list[tuple[str, str]] = []
    table, cgroup, killer = (
        OomDemotion(notify=lambda uid, why: heard.append((uid, why))),
        StandIn(),
        Killer(),
    )
    watch = watching(table, cgroup, killer=killer)
    await asyncio.sleep(0.02)
    assert killer.resolved > 1 and cgroup.calls == 0  # resolved at every wake, nothing to do
    killer.pending = 1
    await asyncio.sleep(0.03)
    watch.cancel()
    assert killer.kills == 1 and table.recently_killed("a")
    assert heard == [("a", "1 of its processes were OOM-killed at its memory limit")]


async def test_a_run_after_a_recent_kill_starts_demoted(fast_polls: None) -> None:
    heard: list[tuple[str, str]] = []
    table, cgroup = OomDemotion(notify=lambda uid, why: heard.append((uid, why))), StandIn()
    assert table.demote_at_start("a", "pod a", cgroup) is None  # never killed
    assert cgroup.before_start == 0
    table.record("a")
    why = table.demote_at_start("a", "pod a", cgroup)
    assert why == "its last run was OOM-killed" and cgroup.before_start == 1
    watch = watching(table, cgroup, demoted=why)
    await asyncio.sleep(0.001)
    cgroup.kills = 1
    await asyncio.sleep(0.03)
    watch.cancel()
    assert heard == [("a", why)]  # told once, for the Event
    assert cgroup.calls == 0  # the launcher placed it: nothing to move


async def test_a_demotion_is_announced_once_until_a_run_starts_undemoted(
    fast_polls: None,
) -> None:
    clock, heard = Clock(), []
    table, cgroup = OomDemotion(clock, notify=lambda uid, _why: heard.append(uid)), StandIn()

    async def run() -> None:  # one run of the pod, from its start to an OOM kill
        why = table.demote_at_start("a", "pod a", cgroup)
        watch = watching(table, cgroup, demoted=why)
        await asyncio.sleep(0.001)
        cgroup.kills += 1
        await asyncio.sleep(0.03)
        watch.cancel()

    await run()  # demoted at its first kill: announced
    await run()  # a crash loop's next runs start demoted: the same demotion
    await run()
    assert heard == ["a"]
    clock.now += DEMOTION_SECONDS + 1  # no kill for a while: the next run starts undemoted
    await run()
    assert heard == ["a", "a"]


async def test_a_pod_with_nothing_left_to_move_is_not_announced(fast_polls: None) -> None:
    heard: list[tuple[str, str]] = []
    table = OomDemotion(notify=lambda uid, why: heard.append((uid, why)))
    cgroup = StandIn(kills=0, empty=True)
    watch = watching(table, cgroup)
    await asyncio.sleep(0.005)
    cgroup.kills = 1
    await asyncio.sleep(0.03)
    watch.cancel()
    assert cgroup.calls == 1 and heard == [] and table.recently_killed("a")


async def test_other_pods_are_left_alone(fast_polls: None) -> None:
    table, cgroup = OomDemotion(), StandIn()
    table.record("other")
    assert table.demote_at_start("a", "pod a", cgroup) is None
    watch = watching(table, cgroup)
    await asyncio.sleep(0.05)
    watch.cancel()
    assert cgroup.calls == 0 and cgroup.before_start == 0


@dataclass
class Refusing(StandIn):
    """A cgroup that cannot be demoted (e.g. a kernel without cpu.idle)."""

    def demote(self) -> bool:
        self.calls += 1
        raise CgroupError("this kernel has no cpu.idle")

    def demote_before_start(self) -> bool:
        self.before_start += 1
        raise CgroupError("this kernel has no cpu.idle")


async def test_a_failed_demotion_is_tried_once_per_run(fast_polls: None) -> None:
    heard: list[tuple[str, str]] = []
    table, cgroup = OomDemotion(notify=lambda uid, why: heard.append((uid, why))), Refusing()
    watch = watching(table, cgroup)
    await asyncio.sleep(0.02)
    cgroup.kills = 1
    await asyncio.sleep(0.03)
    cgroup.kills = 2
    await asyncio.sleep(0.03)
    watch.cancel()
    assert cgroup.calls == 1 and table.recently_killed("a") and heard == []
    assert table.demote_at_start("a", "pod a", cgroup) is None  # logged, runs undemoted


@dataclass
class Broken(StandIn):
    """A cgroup whose OOM counter cannot be read once the pod was killed."""

    def oom_kills(self) -> int:
        if self.kills:
            raise ValueError("garbled memory.oom_control")
        return 0


async def test_a_failing_watch_hands_the_kills_back_to_the_kernel(fast_polls: None) -> None:
    table, cgroup, killer = OomDemotion(), Broken(), Killer()
    watch = watching(table, cgroup, killer=killer)
    await asyncio.sleep(0.02)
    assert not killer.released
    cgroup.kills = 1
    await asyncio.sleep(0.05)
    assert watch.done() and watch.exception() is None  # logged, not raised into the driver
    assert killer.released  # the kernel kills at the limit again


async def test_no_demotion_at_start_without_a_cpu_hierarchy() -> None:
    @dataclass
    class NoCpu(StandIn):
        def demote_before_start(self) -> bool:
            self.before_start += 1
            return False

    table, cgroup = OomDemotion(), NoCpu()
    table.record("a")
    assert table.demote_at_start("a", "pod a", cgroup) is None  # no Event for nothing done
    assert cgroup.before_start == 1
