"""The cgroup v2 code path on the real kernel's unified hierarchy (the fake-tree tests in
test_cgroups.py only check file layouts).

On a hybrid machine the v2 tree is mounted (e.g. /sys/fs/cgroup/unified) but memory, pids and
cpu are bound to v1, so the agent would pick v1; these tests use the v2 tree directly for what
it offers without controllers: an agent-owned parent, placing processes, `populated` in
cgroup.events, killing the whole cgroup (cgroup.kill, and the freeze path of older kernels)
including a setsid daemon, and removal. The limit tests (test_v2_limits_*: limits written,
an OOM kill counted, a fork bomb stopped at pids.max, CPU throttled, usage read, kill and removal
with controllers on) run where the controllers are there and otherwise say why they are skipped.
No controller of the machine is remounted or rebound: tests/vm/test_cgroup2_vm.py runs this
module in a qemu guest whose only hierarchy is cgroup2, where none of it skips.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from shoal.agent.drivers.base import Limits
from shoal.agent.sandbox.bwrap import launcher_argv
from shoal.agent.sandbox.cgroupfs import (
    V2_REQUIRED,
    cpu_period_us,
    cpu_quota_us,
    cpu_shares,
    cpu_weight,
    parse_flat_keyed,
    parse_mountinfo,
)
from shoal.agent.sandbox.cgroups import CgroupError, CgroupHierarchy, PodCgroupV2

MOUNTS = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
UNIFIED = Path(MOUNTS.unified) if MOUNTS.unified else None
needs_v2 = pytest.mark.skipif(
    UNIFIED is None or os.geteuid() != 0, reason="needs root and a mounted cgroup2 hierarchy"
)
pytestmark = [pytest.mark.e2e, needs_v2]

DAEMONIZING = (
    "import os,time\n"
    "if os.fork()==0:\n"
    " os.setsid()\n"
    " if os.fork()==0: time.sleep(60)\n"
    " os._exit(0)\n"
    "os.wait()\n"  # the middle child has forked the daemon and exited: exactly two pids left
    "print('up', flush=True)\n"
    "time.sleep(60)\n"
)


def controllers(path: Path) -> set[str]:
    return set((path / "cgroup.controllers").read_text().split())


@pytest.fixture
async def v2_pod() -> AsyncIterator[PodCgroupV2]:
    assert UNIFIED is not None
    hierarchy = CgroupHierarchy(2, {"": UNIFIED / f"shoal-test-v2-{os.getpid()}", "root": UNIFIED})
    pod = hierarchy.pod("node", f"pod-{os.urandom(4).hex()}")
    assert isinstance(pod, PodCgroupV2)
    try:
        yield pod
    finally:
        await pod.kill_all(within=10)
        await pod.remove()
        hierarchy.remove_node("node")
        assert not pod.path.exists() and not pod.path.parent.parent.exists()


async def daemonize_in(pod: PodCgroupV2) -> tuple[subprocess.Popen[bytes], list[int]]:
    """The leader forks a setsid daemon (whose parent exits), all inside the pod's cgroup."""
    leader = launch(pod, DAEMONIZING, subprocess.PIPE)
    assert leader.stdout is not None
    assert await asyncio.wait_for(asyncio.to_thread(leader.stdout.readline), 20) == b"up\n"
    for _ in range(500):
        pids = pod.pids()
        if len(pids) == 2:
            return leader, pids
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected the leader and its daemon in {pod.path}: {pod.pids()}")


def launch(pod: PodCgroupV2, code: str, stdout: int | None = None) -> subprocess.Popen[bytes]:
    argv = launcher_argv(pod.procs_files(), [sys.executable, "-c", code])
    return subprocess.Popen(argv, stdout=stdout, start_new_session=True)


def unified_cgroup_of(pid: int) -> str:
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    return next(line for line in lines if line.startswith("0::"))[3:]


def gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


async def settled(pod: PodCgroupV2, pids: list[int]) -> None:
    """Up to 2 s for killed tasks to finish exiting: `populated` turns 0, and the pids become
    zombies or go, only once the last task has exited (the callers assert both after)."""
    for _ in range(200):
        if gone(pids) and not pod.populated():
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("use_kill_file", [True, False], ids=["cgroup.kill", "freeze"])
async def test_v2_place_populated_kill_daemon_and_remove(
    v2_pod: PodCgroupV2, use_kill_file: bool
) -> None:
    v2_pod.create_without_controllers()
    assert v2_pod.path.parent.parent.name.startswith("shoal-test-v2-")  # the agent-owned parent
    assert not v2_pod.populated() and v2_pod.pids() == []
    if use_kill_file:
        assert (v2_pod.path / "cgroup.kill").exists(), "kernel without cgroup.kill (< 5.14)"
    leader, pids = await daemonize_in(v2_pod)
    try:
        assert leader.pid in pids
        daemon = next(pid for pid in pids if pid != leader.pid)
        assert os.getsid(daemon) != os.getsid(leader.pid)  # it left the leader's session
        # membership as the kernel reports it
        assert unified_cgroup_of(daemon).endswith("/node/" + v2_pod.path.name)
        assert v2_pod.populated()
        assert v2_pod.usage().cpu_ns > 0  # cpu.stat exists without the cpu controller
        await v2_pod.kill_all(within=5, use_kill_file=use_kill_file)
        assert v2_pod.pids() == []
        assert leader.wait(timeout=5) == -9
        await settled(v2_pod, pids)
        assert not v2_pod.populated()
        assert gone(pids)
        await v2_pod.remove()
        assert not v2_pod.path.exists()
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()


LIMITS = Limits(cpu_millis=500, memory_bytes=64 << 20, pids=16, cpu_request_millis=250)
FORK_BOMB = (
    "import os,time\n"
    "n=0\n"
    "while True:\n"
    " try: pid=os.fork()\n"
    " except BlockingIOError: break\n"  # EAGAIN: pids.max reached
    " if pid==0: time.sleep(60); os._exit(0)\n"
    " n+=1\n"
    "print(n, flush=True)\n"
    "time.sleep(60)\n"
)
BUSY = "import time\nend=time.process_time()+0.3\nwhile time.process_time()<end: pass\n"


def create_limited(pod: PodCgroupV2, limits: Limits = LIMITS) -> None:
    """`pod.create(limits)` where the v2 tree has the controllers (a qemu guest with cgroup2
    only: tests/vm/); elsewhere check the agent's clear error and skip, saying why."""
    assert UNIFIED is not None
    missing = [c for c in V2_REQUIRED if c not in controllers(UNIFIED)]
    if missing:
        # What the agent would say here, for real: a clear error, not a half-made cgroup.
        with pytest.raises(CgroupError, match="are not available"):
            pod.create(limits)
        pytest.skip(
            f"the v2 tree at {UNIFIED} has no {', '.join(missing)} controller (bound to cgroup "
            "v1 on this hybrid machine), so v2 limits cannot be enforced here; "
            "tests/vm/test_cgroup2_vm.py runs them in a cgroup2-only qemu guest"
        )
    pod.create(limits)


def read(pod: PodCgroupV2, name: str) -> str:
    return (pod.path / name).read_text().strip()


async def test_v2_limits_where_the_controllers_are(v2_pod: PodCgroupV2) -> None:
    create_limited(v2_pod)
    assert UNIFIED is not None
    for level in (UNIFIED, v2_pod.path.parent.parent, v2_pod.path.parent):
        enabled = set((level / "cgroup.subtree_control").read_text().split())
        assert {"memory", "pids", "cpu"} <= enabled, level
    assert read(v2_pod, "memory.max") == str(64 << 20)
    assert read(v2_pod, "memory.swap.max") == "0"  # no escape into swap
    assert read(v2_pod, "pids.max") == "16"
    assert read(v2_pod, "cpu.max") == f"{cpu_quota_us(500)} {cpu_period_us(500)}" == "5000 10000"
    assert read(v2_pod, "cpu.weight") == str(cpu_weight(cpu_shares(250))) == "10"
    assert v2_pod.oom_kills() == 0
    leader = launch(v2_pod, "b = bytearray(128 << 20)")  # twice memory.max
    assert leader.wait(timeout=60) == -9
    assert v2_pod.oom_kills() == 1


async def test_v2_limits_pids_max_stops_a_fork_bomb(v2_pod: PodCgroupV2) -> None:
    create_limited(v2_pod)
    bomb = launch(v2_pod, FORK_BOMB, subprocess.PIPE)
    try:
        assert bomb.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(bomb.stdout.readline), 60)
        assert int(line) == 15  # the bomb itself + 15 children = pids.max
        assert v2_pod.usage().pids == 16
        assert len(v2_pod.pids()) == 16
        assert parse_flat_keyed(read(v2_pod, "pids.events"))["max"] >= 1
        await v2_pod.kill_all(within=10)
        assert bomb.wait(timeout=10) == -9
    finally:
        if bomb.poll() is None:
            bomb.kill()
            bomb.wait()


async def test_v2_limits_cpu_quota_throttles_and_usage_is_read(v2_pod: PodCgroupV2) -> None:
    create_limited(v2_pod)
    busy = launch(
        v2_pod,
        BUSY + "b = bytearray(8 << 20)\nprint('up', flush=True)\ntime.sleep(60)\n",
        subprocess.PIPE,
    )
    try:
        assert busy.stdout is not None
        assert await asyncio.wait_for(asyncio.to_thread(busy.stdout.readline), 60) == b"up\n"
        # 0.3 s of CPU at 5 ms per 10 ms period cannot pass without being throttled
        assert parse_flat_keyed(read(v2_pod, "cpu.stat"))["nr_throttled"] > 0
        usage = v2_pod.usage()
        assert usage.cpu_ns >= 300_000_000
        assert usage.memory_bytes >= 8 << 20  # the 8 MiB it holds (working set: no file cache)
        assert usage.pids == 1
    finally:
        busy.kill()
        busy.wait()


async def test_v2_limits_kill_all_takes_a_setsid_daemon(v2_pod: PodCgroupV2) -> None:
    create_limited(v2_pod)
    leader, pids = await daemonize_in(v2_pod)
    try:
        await v2_pod.kill_all(within=5)
        assert leader.wait(timeout=5) == -9
        await settled(v2_pod, pids)
        assert gone(pids) and not v2_pod.populated()
        await v2_pod.remove()
        assert not v2_pod.path.exists()
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()
