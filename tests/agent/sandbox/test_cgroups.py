"""The v2 file layout on a fake cgroupfs tree; the v1 path for real (root + v1 only)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from shoal.agent.drivers.base import Limits
from shoal.agent.sandbox.bwrap import launcher_argv
from shoal.agent.sandbox.cgroupfs import Mounts
from shoal.agent.sandbox.cgroups import (
    CgroupError,
    CgroupHierarchy,
    PodCgroupV1,
    PodCgroupV2,
    detect_cgroups,
    hierarchy_from,
    pod_cgroup_from_state,
)


def fake_v2_root(tmp_path: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("1\n")
    return root


def test_v2_is_chosen_when_unified_tree_has_controllers(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path)
    hierarchy = hierarchy_from(Mounts(unified=str(root)), {}, "shoal")
    assert isinstance(hierarchy, CgroupHierarchy) and hierarchy.version == 2
    pod = hierarchy.pod("node-1", "uid-1")
    assert isinstance(pod, PodCgroupV2)
    assert pod.path == root / "shoal" / "node-1" / "uid-1"
    assert pod.procs_files() == [str(pod.path / "cgroup.procs")]


def test_hybrid_without_v2_controllers_falls_back_to_v1(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path, controllers="")
    mounts = Mounts(
        unified=str(root),
        v1={"memory": "/cg/memory", "pids": "/cg/pids", "cpu": "/cg/cpu,cpuacct"},
        v1_roots={"memory": "/", "pids": "/", "cpu": "/"},
    )
    hierarchy = hierarchy_from(mounts, {"memory": "/job/7", "pids": "/"}, "shoal")
    assert isinstance(hierarchy, CgroupHierarchy) and hierarchy.version == 1
    pod = hierarchy.pod("n", "u")
    assert isinstance(pod, PodCgroupV1)
    assert pod.dirs["memory"] == Path("/cg/memory/job/7/shoal/n/u")  # below the agent's own
    assert pod.dirs["pids"] == Path("/cg/pids/shoal/n/u")
    assert hierarchy_from(Mounts(v1={"memory": "/m"}), {}) == (
        "no usable cgroup hierarchy (v2 without memory/pids, v1 without pids)"
    )


async def test_v2_create_writes_limits_and_enables_controllers(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path)
    hierarchy = hierarchy_from(Mounts(unified=str(root)), {}, "shoal")
    assert isinstance(hierarchy, CgroupHierarchy)
    pod = hierarchy.pod("node-1", "uid-1")
    assert isinstance(pod, PodCgroupV2)
    pod.path.parent.mkdir(parents=True)
    # what the kernel would show in the intermediate levels once enabled above
    for level in (root / "shoal", root / "shoal" / "node-1"):
        (level / "cgroup.controllers").write_text("cpu memory pids\n")
    (pod.path).mkdir()
    (pod.path / "cpu.weight").write_text("100\n")  # what the kernel shows with the cpu controller
    pod.create(Limits(cpu_millis=250, memory_bytes=128 << 20, pids=64, cpu_request_millis=500))
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (root / "shoal" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (root / "shoal" / "node-1" / "cgroup.subtree_control").read_text() == (
        "+memory +pids +cpu"
    )
    assert (pod.path / "memory.max").read_text() == str(128 << 20)
    assert (pod.path / "cpu.max").read_text() == "2500 10000"
    assert (pod.path / "cpu.weight").read_text() == "20"  # 500m requested: 512 shares
    assert (pod.path / "pids.max").read_text() == "64"
    assert not (pod.path / "cgroup.subtree_control").exists()  # a pod cgroup is a leaf

    # counters the kernel would maintain
    (pod.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (pod.path / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (pod.path / "memory.current").write_text("1000000\n")
    (pod.path / "memory.stat").write_text("anon 600000\ninactive_file 200000\n")
    (pod.path / "pids.current").write_text("3\n")
    (pod.path / "cgroup.procs").write_text("")
    assert pod.oom_kills() == 1
    usage = pod.usage()
    assert (usage.cpu_ns, usage.memory_bytes, usage.pids) == (1_500_000, 800_000, 3)

    state = pod.to_state()
    assert pod_cgroup_from_state(state) == pod
    assert pod_cgroup_from_state({}) is None


async def test_v2_missing_required_controller_is_a_clear_error(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path, controllers="cpu io")
    pod = PodCgroupV2(root / "shoal" / "n" / "u", root)
    with pytest.raises(CgroupError, match=r"\['memory', 'pids'\] are not available"):
        pod.create(Limits(memory_bytes=1 << 20))


async def test_v2_kill_uses_cgroup_kill(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path)
    pod = PodCgroupV2(root / "p", root)
    pod.path.mkdir()
    (pod.path / "cgroup.procs").write_text("")
    (pod.path / "cgroup.kill").write_text("0")
    await pod.kill_all(within=1)  # empty: nothing written
    assert (pod.path / "cgroup.kill").read_text() == "0"


def test_v1_state_round_trip() -> None:
    pod = PodCgroupV1({"memory": Path("/m/x"), "cpu": Path("/c/x"), "cpuacct": Path("/c/x")})
    assert pod.procs_files() == ["/m/x/cgroup.procs", "/c/x/cgroup.procs"]
    assert pod_cgroup_from_state(pod.to_state()) == pod
    demotable = CgroupHierarchy(1, {"memory": Path("/m/shoal"), "cpu": Path("/c/shoal")}).pod(
        "node", "x"
    )
    assert isinstance(demotable, PodCgroupV1)
    assert demotable.demoted_cpu == Path("/c/shoal-demoted/node/x")
    assert pod_cgroup_from_state(demotable.to_state()) == demotable


# ---- real cgroups (v1 on this kind of machine) -------------------------------------------

REAL = detect_cgroups(parent=f"shoal-test-{os.getpid()}")
needs_real = pytest.mark.skipif(not isinstance(REAL, CgroupHierarchy), reason=f"no cgroups: {REAL}")


@pytest.fixture
async def real_pod() -> AsyncIterator[PodCgroupV1 | PodCgroupV2]:
    assert isinstance(REAL, CgroupHierarchy)
    pod = REAL.pod("node", f"pod-{os.urandom(4).hex()}")
    try:
        yield pod
    finally:
        await pod.kill_all(within=10)
        await pod.remove()
        # the per-test parents too, the demoted group's (v1) included
        bases = [base for key, base in REAL.base.items() if key != "root"]
        if isinstance(pod, PodCgroupV1) and pod.demoted_cpu is not None:
            bases.append(pod.demoted_cpu.parent.parent)
        for base in bases:
            for path in (base / "node", base):
                if path.exists() and base.name.startswith("shoal-test-"):
                    os.rmdir(path)
        assert not pod.pids()


def launch(pod: PodCgroupV1 | PodCgroupV2, code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        launcher_argv(pod.procs_files(), [sys.executable, "-c", code]),
        start_new_session=True,
    )


async def placed(pod: PodCgroupV1 | PodCgroupV2, pid: int) -> None:
    """Until `pid` has joined the pod's cgroups (the launcher places itself), up to 4 s."""
    for _ in range(200):
        if pid in pod.pids():
            return
        await asyncio.sleep(0.02)


@contextlib.contextmanager
def launched(pod: PodCgroupV1 | PodCgroupV2, code: str) -> Iterator[subprocess.Popen[bytes]]:
    """`launch`, killed and reaped at exit if still running."""
    leader = launch(pod, code)
    try:
        yield leader
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()


@pytest.mark.e2e
@needs_real
async def test_real_limits_usage_and_kill_of_daemons(real_pod: PodCgroupV1 | PodCgroupV2) -> None:
    real_pod.create(Limits(cpu_millis=500, memory_bytes=256 << 20, pids=20))
    # the leader forks a setsid daemon, then both sleep
    code = "import os,time\nif os.fork()==0:\n os.setsid(); time.sleep(60)\ntime.sleep(60)\n"
    leader = launch(real_pod, code)
    try:
        for _ in range(200):
            if len(real_pod.pids()) >= 2:
                break
            await asyncio.sleep(0.02)
        pids = real_pod.pids()
        assert leader.pid in pids and len(pids) == 2
        usage = real_pod.usage()
        assert usage.pids == 2 and usage.memory_bytes > 0 and usage.cpu_ns > 0
        await real_pod.kill_all(within=5)
        assert real_pod.pids() == []
        assert leader.wait(timeout=5) == -9
        for pid in pids:  # gone, or a zombie waiting for its reaper
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()


@pytest.mark.e2e
@needs_real
async def test_real_cpu_request_sets_the_weight(real_pod: PodCgroupV1 | PodCgroupV2) -> None:
    real_pod.create(Limits(cpu_millis=1500, cpu_request_millis=250))
    if isinstance(real_pod, PodCgroupV1):
        cpu = real_pod.dirs["cpu"]
        assert (cpu / "cpu.shares").read_text().strip() == "256"
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "15000"
        real_pod.create(Limits())  # re-applied without a request: back to the minimum
        assert (cpu / "cpu.shares").read_text().strip() == "2"
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "-1"
    else:
        assert (real_pod.path / "cpu.weight").read_text().strip() == "10"
        assert (real_pod.path / "cpu.max").read_text().split() == ["15000", "10000"]


@pytest.mark.e2e
@needs_real
async def test_real_oom_kill_is_counted(real_pod: PodCgroupV1 | PodCgroupV2) -> None:
    real_pod.create(Limits(memory_bytes=64 << 20, pids=20))
    leader = launch(real_pod, "b = bytearray(128 << 20)\nimport time; time.sleep(30)")
    try:
        assert leader.wait(timeout=30) == -9
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()
    assert real_pod.oom_kills() >= 1


def cpu_cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(",") or controllers == "":
            return path
    raise AssertionError(f"pid {pid} has no cpu cgroup")


@pytest.mark.e2e
@needs_real
async def test_real_demote_makes_the_pods_cpu_idle(real_pod: PodCgroupV1 | PodCgroupV2) -> None:
    real_pod.create(Limits(cpu_millis=100, memory_bytes=64 << 20, cpu_request_millis=100))
    with launched(real_pod, "import time; time.sleep(60)") as leader:
        await placed(real_pod, leader.pid)
        assert real_pod.demote()
        assert not real_pod.demote()  # once is enough
        if isinstance(real_pod, PodCgroupV2):
            assert (real_pod.path / "cpu.idle").read_text().strip() == "1"
        else:
            target = real_pod.demoted_cpu
            assert target is not None
            assert (target.parent.parent / "cpu.idle").read_text().strip() == "1"
            assert cpu_cgroup_of(leader.pid).endswith(f"-demoted/node/{target.name}")
            for name in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"):
                assert (target / name).read_text() == (real_pod.dirs["cpu"] / name).read_text()
            assert leader.pid in real_pod.pids()  # memory and pids still hold it
        await real_pod.kill_all(within=5)
        assert leader.wait(timeout=5) == -9
        await real_pod.remove()
        if isinstance(real_pod, PodCgroupV1):
            assert real_pod.demoted_cpu is not None and not real_pod.demoted_cpu.exists()


@pytest.mark.e2e
@needs_real
async def test_real_run_placed_demoted_from_its_start(real_pod: PodCgroupV1 | PodCgroupV2) -> None:
    if isinstance(real_pod, PodCgroupV1) and "cpu" not in real_pod.dirs:
        pytest.skip("no v1 cpu hierarchy: nothing to demote into")
    real_pod.create(Limits(cpu_millis=100, memory_bytes=64 << 20, cpu_request_millis=100))
    assert real_pod.demote_before_start()
    with launched(real_pod, "import time; time.sleep(60)") as leader:
        await placed(real_pod, leader.pid)
        assert leader.pid in real_pod.pids()
        if isinstance(real_pod, PodCgroupV2):
            assert (real_pod.path / "cpu.idle").read_text().strip() == "1"
        else:
            target = real_pod.demoted_cpu
            assert target is not None
            assert cpu_cgroup_of(leader.pid).endswith(f"-demoted/node/{target.name}")
            for name in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"):
                assert (target / name).read_text() == (real_pod.dirs["cpu"] / name).read_text()
            assert not real_pod.demote()  # nothing in the pod's normal cpu group to move
        await real_pod.kill_all(within=5)
        assert leader.wait(timeout=5) == -9
        await real_pod.remove()
