"""The cgroup v2 code path on the real kernel's unified hierarchy (the fake-tree tests in
test_cgroups.py only check file layouts).

On a hybrid machine the v2 tree is mounted (e.g. /sys/fs/cgroup/unified) but memory, pids and
cpu are bound to v1, so the agent would pick v1; these tests use the v2 tree directly for what
it offers without controllers: an agent-owned parent, placing processes, `populated` in
cgroup.events, killing the whole cgroup (cgroup.kill, and the freeze path of older kernels)
including a setsid daemon, and removal. The limit test runs where the controllers are there
and otherwise says why it is skipped. No controller of the machine is remounted or rebound.
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
from shoal.agent.sandbox.cgroupfs import V2_REQUIRED, parse_mountinfo
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
        for _ in range(200):  # populated turns 0 once the last task has exited
            if not v2_pod.populated():
                break
            await asyncio.sleep(0.01)
        assert not v2_pod.populated()
        assert gone(pids)
        await v2_pod.remove()
        assert not v2_pod.path.exists()
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()


async def test_v2_limits_where_the_controllers_are(v2_pod: PodCgroupV2) -> None:
    assert UNIFIED is not None
    missing = [c for c in V2_REQUIRED if c not in controllers(UNIFIED)]
    limits = Limits(cpu_millis=500, memory_bytes=64 << 20, pids=16, cpu_request_millis=250)
    if missing:
        # What the agent would say here, for real: a clear error, not a half-made cgroup.
        with pytest.raises(CgroupError, match="are not available"):
            v2_pod.create(limits)
        pytest.skip(
            f"the v2 tree at {UNIFIED} has no {', '.join(missing)} controller (bound to cgroup "
            "v1 on this hybrid machine), so v2 limits cannot be enforced here"
        )
    v2_pod.create(limits)
    assert (v2_pod.path / "memory.max").read_text().strip() == str(64 << 20)
    assert (v2_pod.path / "pids.max").read_text().strip() == "16"
    if (v2_pod.path / "cpu.weight").exists():
        assert (v2_pod.path / "cpu.weight").read_text().strip() == "10"
    leader = launch(v2_pod, "b = bytearray(128 << 20)")
    assert leader.wait(timeout=30) == -9
    assert v2_pod.oom_kills() >= 1
