"""The agent's OOM killer: the victim choice, when a kill is due (pure), its ledger of kills,
and for real on a v1 memory cgroup (root): the kernel's killer stays off, the event wakes the
agent, the kernel's choice dies, nothing else does, a re-adopting agent resolves an OOM left
pending while it was away, and a release hands the kills back to the kernel."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shoal.agent.drivers.base import Limits
from shoal.agent.sandbox.bwrap import launcher_argv
from shoal.agent.sandbox.cgroupfs import parse_flat_keyed
from shoal.agent.sandbox.cgroups import CgroupHierarchy, PodCgroupV1, detect_cgroups
from shoal.agent.sandbox.oom_killer import (
    PAGE,
    AgentOomKiller,
    KillLedger,
    badness,
    choose_victim,
    kill_due,
    memory_limited,
)

MI = 2**20
STATUS = "Name:\tpython3\nVmRSS:\t999 kB\nRssAnon:\t{anon} kB\nRssFile:\t{file} kB\n"
STATUS += "RssShmem:\t0 kB\nVmSwap:\t{swap} kB\nVmPTE:\t{pte} kB\n"


def status(anon: int, file: int = 0, swap: int = 0, pte: int = 0) -> str:
    return STATUS.format(anon=anon, file=file, swap=swap, pte=pte)


def test_badness_is_the_kernels_memcg_score() -> None:
    pages = 4096 * 1024 // PAGE  # the pages of 4096 kB
    assert badness(status(anon=4096), 0, 16384) == pages
    assert badness(status(anon=4096, file=4096, swap=4096, pte=4096), 0, 16384) == 4 * pages
    # oom_score_adj counts per mille of the limit, not of the node's memory
    assert badness(status(anon=4096), 500, 16384) == pages + 500 * 16
    assert badness(status(anon=4096), -1000, 16384) is None  # never killed


def test_the_victim_has_the_highest_badness() -> None:
    assert choose_victim({}) is None
    assert choose_victim({10: 300, 11: 700, 12: 20}) == 11
    assert choose_victim({10: 500, 11: 500}) == 11  # a tie: the newest


def test_a_second_kill_needs_a_new_oom() -> None:
    assert not kill_due(False, 1, None)
    assert kill_due(True, 0, None)  # the run's first: also one pending at re-adoption
    assert not kill_due(True, 1, 1)  # a waiter still marked, no OOM reported since the kill
    assert kill_due(True, 2, 1)


@pytest.mark.parametrize("in_file", [True, False], ids=["file", "memory"])
def test_the_ledger_counts_kills_and_a_new_ledger_on_its_file_sees_them(
    tmp_path: Path, in_file: bool
) -> None:
    path = tmp_path / "ledgers" / "pod-uid" if in_file else None
    ledger = KillLedger(path)
    assert ledger.count() == 0
    ledger.add()
    ledger.add()
    ledger.take_back()  # the victim was gone already
    assert ledger.count() == 1
    assert KillLedger(path).count() == (1 if in_file else 0)  # as the next agent sees it
    ledger.add()
    ledger.clear()
    assert ledger.count() == 0 and KillLedger(path).count() == 0
    assert path is None or not path.exists()


def test_a_ledger_that_cannot_be_written_still_counts(tmp_path: Path) -> None:
    """A full disk or a broken data dir must never stop a kill: the count stays in memory."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    ledger = KillLedger(blocker / "pod-uid")
    ledger.add()
    ledger.add()
    ledger.take_back()
    assert ledger.count() == 1
    ledger.clear()
    assert ledger.count() == 0


REAL = detect_cgroups(parent=f"shoal-oom-test-{os.getpid()}")
needs_v1 = pytest.mark.skipif(
    not isinstance(REAL, CgroupHierarchy) or REAL.version != 1,
    reason=f"the agent kills at the limit on cgroup v1 only (v2 keeps the kernel's): {REAL}",
)


@pytest.fixture
async def pod() -> AsyncIterator[PodCgroupV1]:
    assert isinstance(REAL, CgroupHierarchy)
    cgroup = REAL.pod("node", f"pod-{os.urandom(4).hex()}")
    assert isinstance(cgroup, PodCgroupV1)
    cgroup.create(Limits(memory_bytes=64 * MI, pids=20))
    try:
        yield cgroup
    finally:
        await cgroup.kill_all(within=10)
        await cgroup.remove()
        for base in REAL.base.values():
            for path in (base / "node", base):
                if path.exists() and base.name.startswith("shoal-oom-test-"):
                    os.rmdir(path)


@contextlib.contextmanager
def launched(pod: PodCgroupV1, code: str) -> Iterator[subprocess.Popen[str]]:
    """`code` running in the pod's cgroups; killed and reaped at exit if still running."""
    leader = subprocess.Popen(
        launcher_argv(pod.procs_files(), [sys.executable, "-c", code]),
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield leader
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()


def control(pod: PodCgroupV1) -> dict[str, int]:
    found = parse_flat_keyed((pod.dirs["memory"] / "memory.oom_control").read_text())
    return {"oom_kill": 0, **found}  # the counter is missing before Linux 4.13


def take_over(pod: PodCgroupV1) -> AgentOomKiller:
    killer = AgentOomKiller.take_over(pod.dirs["memory"])
    assert killer is not None, "the kernel refused to hand over OOM kills"
    return killer


@pytest.fixture
def killer(pod: PodCgroupV1) -> Iterator[AgentOomKiller]:
    """The agent's killer for `pod`, closed at the end."""
    taken = take_over(pod)
    try:
        yield taken
    finally:
        taken.close()


ALLOCATE = "b = bytearray(128 << 20)\nprint('survived', flush=True)"
FIRST_AGENT = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from shoal.agent.sandbox.oom_killer import AgentOomKiller\n"
    "killer = AgentOomKiller.take_over(Path(sys.argv[1]))\n"
    "print('ready' if killer else 'refused', flush=True)\n"
    "time.sleep(60)\n"
)
# A parent (small) whose child allocates twice the limit; it reports the child's end.
PARENT = (
    "import os, time\n"
    "child = os.fork()\n"
    "if child == 0:\n"
    "    b = bytearray(128 << 20)\n"
    "    os._exit(0)\n"
    "_, status = os.waitpid(child, 0)\n"
    "print('child signal', os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0, flush=True)\n"
    "time.sleep(30)\n"
)


@pytest.mark.e2e
@needs_v1
async def test_the_agent_kills_at_the_limit_and_the_kernel_does_not(
    pod: PodCgroupV1, killer: AgentOomKiller
) -> None:
    with launched(pod, ALLOCATE) as leader:
        await killer.wait(30)
        assert control(pod)["under_oom"] == 1  # the allocator waits, the kernel did not kill
        assert await killer.resolve()
        assert leader.wait(timeout=10) == -9
        assert killer.kills == 1
        assert control(pod)["oom_kill"] == 0  # no kernel kill, so no kernel log line
        assert control(pod)["under_oom"] == 0
        assert not await killer.resolve()  # nothing pending: nobody else dies


@pytest.mark.e2e
@needs_v1
async def test_only_the_largest_process_dies(pod: PodCgroupV1, killer: AgentOomKiller) -> None:
    with launched(pod, PARENT) as parent:
        await killer.wait(30)
        assert await killer.resolve()
        assert parent.stdout is not None
        assert parent.stdout.readline().split() == ["child", "signal", "9"]
        assert parent.poll() is None  # the small parent lives on, as with the kernel's killer


def agent_killed_after_taking_over(pod: PodCgroupV1) -> None:
    """An agent takes the kills over and is then killed -9: its eventfd goes, the switch stays."""
    agent = subprocess.Popen(
        [sys.executable, "-c", FIRST_AGENT, str(pod.dirs["memory"])],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == "ready"
    finally:
        agent.kill()
        agent.wait()


@pytest.mark.e2e
@needs_v1
async def test_a_pending_oom_is_resolved_by_the_next_agent(pod: PodCgroupV1) -> None:
    agent_killed_after_taking_over(pod)
    with launched(pod, ALLOCATE) as leader:
        deadline = time.monotonic() + 30
        while control(pod)["under_oom"] != 1:  # the allocator waits at the limit, unkilled
            assert time.monotonic() < deadline and leader.poll() is None
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert leader.poll() is None
        assert memory_limited(pod.dirs["memory"])
        second = take_over(pod)
        killed = False
        while not killed and time.monotonic() < deadline:
            killed = await second.resolve()
            await second.wait(0.2)
        second.close()
        assert killed and second.kills == 1 and leader.wait(timeout=10) == -9


@pytest.mark.e2e
@needs_v1
async def test_a_pod_below_its_limit_is_left_alone(
    pod: PodCgroupV1, killer: AgentOomKiller
) -> None:
    code = "b = bytearray(16 << 20)\nprint('fine', flush=True)\nimport time; time.sleep(30)"
    with launched(pod, code) as leader:
        assert leader.stdout is not None and leader.stdout.readline().strip() == "fine"
        await killer.wait(0.2)
        assert not await killer.resolve() and leader.poll() is None


@pytest.mark.e2e
@needs_v1
async def test_a_release_hands_the_kill_back_to_the_kernel(
    pod: PodCgroupV1, killer: AgentOomKiller
) -> None:
    with launched(pod, ALLOCATE) as leader:
        await killer.wait(30)
        assert control(pod)["under_oom"] == 1
        killer.release()  # as before a stop, or when the watch failed
        assert leader.wait(timeout=10) == -9  # the kernel killed the waiting allocator
        assert control(pod)["oom_kill_disable"] == 0
        assert not await killer.resolve() and killer.kills == 0


@pytest.mark.e2e
@needs_v1
async def test_a_task_waiting_at_the_limit_does_not_stall_a_kill_of_the_pod(
    pod: PodCgroupV1, killer: AgentOomKiller
) -> None:
    with launched(pod, ALLOCATE) as leader:
        await killer.wait(30)
        assert control(pod)["under_oom"] == 1  # waiting in the kernel: it cannot be frozen
        started = time.monotonic()
        await pod.kill_all(within=5)  # raised after 5 s before kill_all released the hold
        assert time.monotonic() - started < 5
        assert leader.wait(timeout=10) == -9 and not pod.pids()
