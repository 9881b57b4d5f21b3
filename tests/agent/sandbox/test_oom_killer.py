"""The agent's OOM killer: the victim choice (pure), and for real on a v1 memory cgroup (root):
the kernel's killer stays off, the event wakes the agent, the kernel's choice dies, nothing
else does, and a re-adopting agent resolves an OOM left pending while it was away."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from shoal.agent.drivers.base import Limits
from shoal.agent.sandbox.bwrap import launcher_argv
from shoal.agent.sandbox.cgroupfs import parse_flat_keyed
from shoal.agent.sandbox.cgroups import CgroupHierarchy, PodCgroupV1, detect_cgroups
from shoal.agent.sandbox.oom_killer import AgentOomKiller, agent_kills_oom, choose_victim

MI = 2**20


def test_the_victim_is_the_kernels_choice() -> None:
    assert choose_victim({}) is None
    assert choose_victim({10: (300, 50), 11: (700, 10), 12: (20, 900)}) == 11
    assert choose_victim({10: (500, 50), 11: (500, 80)}) == 11  # a tie: the larger one


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


def launch(pod: PodCgroupV1, code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        launcher_argv(pod.procs_files(), [sys.executable, "-c", code]),
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )


def control(pod: PodCgroupV1) -> dict[str, int]:
    return parse_flat_keyed((pod.dirs["memory"] / "memory.oom_control").read_text())


def take_over(pod: PodCgroupV1) -> AgentOomKiller:
    killer = AgentOomKiller.take_over(pod.dirs["memory"])
    assert killer is not None, "the kernel refused to hand over OOM kills"
    return killer


ALLOCATE = "b = bytearray(128 << 20)\nprint('survived', flush=True)"
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
async def test_the_agent_kills_at_the_limit_and_the_kernel_does_not(pod: PodCgroupV1) -> None:
    killer = take_over(pod)
    leader = launch(pod, ALLOCATE)
    try:
        await killer.wait(30)
        assert control(pod)["under_oom"] == 1  # the allocator waits, the kernel did not kill
        assert await killer.resolve() == 1
        assert leader.wait(timeout=10) == -9
        assert killer.kills == 1
        assert control(pod)["oom_kill"] == 0  # no kernel kill, so no kernel log line
        assert control(pod)["under_oom"] == 0
        assert await killer.resolve() == 0  # nothing pending: nobody else dies
    finally:
        killer.close()
        if leader.poll() is None:
            leader.kill()
            leader.wait()


@pytest.mark.e2e
@needs_v1
async def test_only_the_largest_process_dies(pod: PodCgroupV1) -> None:
    killer = take_over(pod)
    parent = launch(pod, PARENT)
    try:
        await killer.wait(30)
        assert await killer.resolve() == 1
        assert parent.stdout is not None
        assert parent.stdout.readline().split() == ["child", "signal", "9"]
        assert parent.poll() is None  # the small parent lives on, as with the kernel's killer
    finally:
        killer.close()
        parent.kill()
        parent.wait()


@pytest.mark.e2e
@needs_v1
async def test_a_pending_oom_is_resolved_by_the_next_agent(pod: PodCgroupV1) -> None:
    first = take_over(pod)
    leader = launch(pod, ALLOCATE)
    try:
        await first.wait(30)
        first.close()  # the agent dies without resolving: the allocator keeps waiting
        await asyncio.sleep(0.3)
        assert leader.poll() is None and control(pod)["under_oom"] == 1
        assert agent_kills_oom(pod.dirs["memory"])
        second = take_over(pod)
        deadline = time.monotonic() + 10
        killed = 0
        while not killed and time.monotonic() < deadline:
            killed = await second.resolve()
        second.close()
        assert killed == 1 and leader.wait(timeout=10) == -9
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()


@pytest.mark.e2e
@needs_v1
async def test_a_pod_below_its_limit_is_left_alone(pod: PodCgroupV1) -> None:
    killer = take_over(pod)
    leader = launch(
        pod, "b = bytearray(16 << 20)\nprint('fine', flush=True)\nimport time; time.sleep(30)"
    )
    try:
        assert leader.stdout is not None and leader.stdout.readline().strip() == "fine"
        await killer.wait(0.2)
        assert await killer.resolve() == 0 and leader.poll() is None
    finally:
        killer.close()
        leader.kill()
        leader.wait()
