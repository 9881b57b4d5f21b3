from __future__ import annotations

from shoal.agent.drivers.base import Limits
from shoal.agent.sandbox.cgroupfs import (
    cpu_period_us,
    cpu_quota_us,
    cpu_shares,
    cpu_weight,
    limit_files_v1,
    limit_files_v2,
    parse_flat_keyed,
    parse_mountinfo,
    parse_pid_list,
    parse_proc_cgroup,
    relative_to_mount,
    working_set,
)

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_limits_v1_layout() -> None:
    writes = limit_files_v1(Limits(cpu_millis=500, memory_bytes=64 << 20, pids=50), True)
    assert writes == [
        ("memory", "memory.limit_in_bytes", str(64 << 20)),
        ("memory", "memory.memsw.limit_in_bytes", str(64 << 20)),
        ("cpu", "cpu.cfs_period_us", "10000"),
        ("cpu", "cpu.cfs_quota_us", "5000"),
        ("cpu", "cpu.shares", "2"),  # no request: a best-effort weight
        ("pids", "pids.max", "50"),
    ]
    asked = dict(((c, f), v) for c, f, v in limit_files_v1(Limits(cpu_request_millis=250), False))
    assert asked[("cpu", "cpu.shares")] == "256"
    unlimited = dict(((c, f), v) for c, f, v in limit_files_v1(Limits(), False))
    assert unlimited[("memory", "memory.limit_in_bytes")] == "-1"
    assert unlimited[("cpu", "cpu.cfs_quota_us")] == "-1"
    assert unlimited[("pids", "pids.max")] == "max"
    assert ("memory", "memory.memsw.limit_in_bytes") not in unlimited


def test_limits_v2_layout() -> None:
    writes = limit_files_v2(Limits(cpu_millis=1500, memory_bytes=1000, pids=7), True)
    assert writes == [
        ("memory.max", "1000"),
        ("memory.swap.max", "0"),
        ("cpu.max", "15000 10000"),
        ("cpu.weight", "1"),
        ("pids.max", "7"),
    ]
    assert dict(limit_files_v2(Limits(cpu_request_millis=1000), False)) == {
        "memory.max": "max",
        "cpu.max": "max 10000",
        "cpu.weight": "39",
        "pids.max": "max",
    }


def test_cpu_request_to_shares_and_weight_as_kubernetes() -> None:
    # v1: 1024 shares per core requested, clamped to the kernel's 2..262144
    assert cpu_shares(1000) == 1024
    assert cpu_shares(100) == 102
    assert cpu_shares(2500) == 2560
    assert cpu_shares(1) == 2 and cpu_shares(0) == 2 and cpu_shares(None) == 2
    assert cpu_shares(10_000_000) == 262_144
    # v2: the kubelet's linear map of 2..262144 shares onto weights 1..10000
    assert cpu_weight(2) == 1
    assert cpu_weight(1024) == 39
    assert cpu_weight(102) == 4
    assert cpu_weight(262_144) == 10_000
    assert cpu_weight(0) == 1 and cpu_weight(10**9) == 10_000
    # more CPU requested never means less weight
    weights = [cpu_weight(cpu_shares(m)) for m in range(0, 300_000, 997)]
    assert weights == sorted(weights)


def test_cpu_quota_has_kernel_minimum() -> None:
    assert cpu_quota_us(1) == 1000
    assert cpu_quota_us(2000) == 20_000


def test_short_cpu_periods_keep_small_limits_exact() -> None:
    # 10 ms periods (short bursts at the quota), longer ones where a 10 ms period would need
    # a quota under the kernel's 1 ms minimum: the share of a CPU stays what the limit says.
    assert cpu_period_us(None) == cpu_period_us(500) == cpu_period_us(100) == 10_000
    assert (cpu_period_us(50), cpu_quota_us(50)) == (20_000, 1000)
    assert (cpu_period_us(3), cpu_quota_us(3)) == (333_334, 1000)
    assert (cpu_period_us(1), cpu_quota_us(1)) == (1_000_000, 1000)
    for millis in (1, 3, 7, 10, 50, 99, 100, 250, 1000, 4000):
        share = cpu_quota_us(millis) / cpu_period_us(millis)
        assert abs(share - millis / 1000) <= 0.001 * millis / 1000 + 1e-6, millis


def test_parse_mountinfo_hybrid() -> None:
    mounts = parse_mountinfo(HYBRID_MOUNTINFO)
    assert mounts.unified == "/sys/fs/cgroup/unified"
    assert mounts.v1 == {
        "cpu": "/sys/fs/cgroup/cpu",
        "cpuacct": "/sys/fs/cgroup/cpuacct",
        "memory": "/sys/fs/cgroup/memory",
        "freezer": "/sys/fs/cgroup/freezer",
        "pids": "/sys/fs/cgroup/pids",
    }


def test_parse_mountinfo_comounted_and_container_root() -> None:
    text = "50 40 0:40 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n"
    mounts = parse_mountinfo(text)
    assert mounts.v1["cpu"] == mounts.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert mounts.v1_roots["cpu"] == "/docker/abc"
    assert relative_to_mount("/docker/abc/x", "/docker/abc") == "x"
    assert relative_to_mount("/docker/abc", "/docker/abc") == ""
    assert relative_to_mount("/a/b", "/") == "a/b"


def test_parse_proc_cgroup() -> None:
    text = "9:name=systemd:/\n4:memory:/job/1\n2:cpu,cpuacct:/\n0::/user.slice\n"
    unified, v1 = parse_proc_cgroup(text)
    assert unified == "/user.slice"
    assert v1 == {"memory": "/job/1", "cpu": "/", "cpuacct": "/"}


def test_counters_and_pids() -> None:
    events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n"
    assert parse_flat_keyed(events)["oom_kill"] == 1
    assert parse_flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")["oom_kill"] == 3
    assert parse_pid_list("12\n13\n\n") == [12, 13]
    assert working_set(100, {"inactive_file": 30}, "inactive_file") == 70
    assert working_set(10, {"inactive_file": 30}, "inactive_file") == 0
