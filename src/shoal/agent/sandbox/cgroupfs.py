"""Pure cgroup knowledge: which files carry a pod's limits (v1 and v2), and how to parse what the
kernel says about mounts, membership and counters.

Called by `cgroups` (the I/O side); kept free of I/O so the layouts are unit-tested exactly.

v1 (one hierarchy per controller, e.g. /sys/fs/cgroup/memory):
    memory.limit_in_bytes (+ memory.memsw.limit_in_bytes when swap accounting exists: no swap
    escape), cpu.cfs_period_us + cpu.cfs_quota_us (limit), cpu.shares (request), pids.max;
    usage from cpuacct.usage, memory.usage_in_bytes - total_inactive_file, pids.current;
    OOM kills from memory.oom_control.
v2 (one unified tree):
    memory.max (+ memory.swap.max 0), cpu.max "QUOTA PERIOD" (limit), cpu.weight (request),
    pids.max; usage from cpu.stat
    usage_usec, memory.current - inactive_file, pids.current; OOM kills from memory.events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.agent.drivers.base import Limits

# The CFS period. Not the kernel's (and Kubernetes') 100 ms: a pod at its quota runs in bursts
# as long as its quota per period (10 ms for 100m), holding a core its neighbours wait for;
# 10 ms periods make those bursts ten times shorter (bench/bench_sandbox.py's neighbour p99).
# A limit under 100m gets a longer period, so that its quota keeps the kernel's 1 ms minimum.
CPU_PERIOD_US = 10_000
MIN_QUOTA_US = 1_000
MAX_PERIOD_US = 1_000_000  # the kernel's maximum
# cpu.shares bounds of the kernel (v1); the minimum is what a pod without a CPU request gets.
MIN_SHARES = 2
MAX_SHARES = 262_144
# v1 controllers a pod cgroup joins. cpuset is left out on purpose: a v1 cpuset cgroup refuses
# tasks until cpuset.cpus/mems are filled in, and shoal does not pin CPUs.
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
V1_REQUIRED = ("memory", "pids")
V2_CONTROLLERS = ("memory", "pids", "cpu")
V2_REQUIRED = ("memory", "pids")


@dataclass(frozen=True)
class Usage:
    """What one pod's cgroup uses now: for `shoal top pods` and node accounting."""

    cpu_ns: int = 0
    memory_bytes: int = 0
    pids: int = 0


@dataclass(frozen=True)
class Mounts:
    """Where the cgroup hierarchies are mounted (absolute paths) and their roots."""

    unified: str | None = None
    unified_root: str = "/"
    v1: dict[str, str] = field(default_factory=dict)  # controller -> mount point
    v1_roots: dict[str, str] = field(default_factory=dict)  # controller -> mount root


def cpu_period_us(cpu_millis: int | None) -> int:
    """CFS period for a limit of `cpu_millis`: CPU_PERIOD_US, longer for limits under 100m."""
    if not cpu_millis:
        return CPU_PERIOD_US
    needed = -(-MIN_QUOTA_US * 1000 // cpu_millis)  # rounded up
    return min(MAX_PERIOD_US, max(CPU_PERIOD_US, needed))


def cpu_quota_us(cpu_millis: int, period_us: int | None = None) -> int:
    """CFS quota for `cpu_millis` thousandths of a CPU (at least 1 ms, the kernel's minimum)."""
    period = cpu_period_us(cpu_millis) if period_us is None else period_us
    return max(MIN_QUOTA_US, cpu_millis * period // 1000)


def cpu_shares(request_millis: int | None) -> int:
    """v1 cpu.shares for a CPU request: 1024 per core, as Kubernetes (MilliCPUToShares).

    No request gets the minimum (2), like a Kubernetes BestEffort pod: under contention it
    yields to pods that asked for CPU. Shares only weigh pods against each other (they are
    siblings under the node's cgroup); an idle neighbour leaves the whole CPU to the others.
    """
    if not request_millis:
        return MIN_SHARES
    return min(MAX_SHARES, max(MIN_SHARES, request_millis * 1024 // 1000))


def cpu_weight(shares: int) -> int:
    """v2 cpu.weight (1..10000) for v1 shares (2..262144), the kubelet's linear mapping:
    1 + (shares - 2) * 9999 / 262142 (so 1024 shares, one core, is weight 39)."""
    shares = min(MAX_SHARES, max(MIN_SHARES, shares))
    return 1 + (shares - MIN_SHARES) * 9999 // (MAX_SHARES - MIN_SHARES)


def limit_files_v1(limits: Limits, swap_accounting: bool) -> list[tuple[str, str, str]]:
    """(controller, file, value) in write order. Unlimited values are written too, so that
    re-applying limits to an existing cgroup also lifts a limit that was removed."""
    memory = str(limits.memory_bytes) if limits.memory_bytes is not None else "-1"
    writes = [("memory", "memory.limit_in_bytes", memory)]
    if swap_accounting:
        # memsw must stay >= memory: written after it; equal values mean "no swap".
        writes.append(("memory", "memory.memsw.limit_in_bytes", memory))
    writes.append(("cpu", "cpu.cfs_period_us", str(cpu_period_us(limits.cpu_millis))))
    quota = "-1" if limits.cpu_millis is None else str(cpu_quota_us(limits.cpu_millis))
    writes.append(("cpu", "cpu.cfs_quota_us", quota))
    writes.append(("cpu", "cpu.shares", str(cpu_shares(limits.cpu_request_millis))))
    writes.append(("pids", "pids.max", "max" if limits.pids is None else str(limits.pids)))
    return writes


def limit_files_v2(limits: Limits, swap_file: bool) -> list[tuple[str, str]]:
    """(file, value) in write order for a v2 pod cgroup."""
    memory = "max" if limits.memory_bytes is None else str(limits.memory_bytes)
    writes = [("memory.max", memory)]
    if swap_file:
        writes.append(("memory.swap.max", "0"))
    quota = "max" if limits.cpu_millis is None else str(cpu_quota_us(limits.cpu_millis))
    writes.append(("cpu.max", f"{quota} {cpu_period_us(limits.cpu_millis)}"))
    writes.append(("cpu.weight", str(cpu_weight(cpu_shares(limits.cpu_request_millis)))))
    writes.append(("pids.max", "max" if limits.pids is None else str(limits.pids)))
    return writes


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, memory.events, cpu.stat, memory.oom_control)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def parse_pid_list(text: str) -> list[int]:
    """cgroup.procs: one pid per line."""
    return [int(line) for line in text.split() if line.isdigit()]


def parse_mountinfo(text: str) -> Mounts:
    """cgroup and cgroup2 mounts from /proc/self/mountinfo (first mount of each wins)."""
    unified: str | None = None
    unified_root = "/"
    v1: dict[str, str] = {}
    roots: dict[str, str] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mount_point, fstype, options = fields[3], fields[4], tail[0], tail[2].split(",")
        if fstype == "cgroup2" and unified is None:
            unified, unified_root = mount_point, root
        elif fstype == "cgroup":
            for controller in V1_CONTROLLERS:
                if controller in options and controller not in v1:
                    v1[controller] = mount_point
                    roots[controller] = root
    return Mounts(unified, unified_root, v1, roots)


def parse_proc_cgroup(text: str) -> tuple[str | None, dict[str, str]]:
    """/proc/<pid>/cgroup -> (v2 path, {v1 controller: path})."""
    unified: str | None = None
    v1: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            unified = path
        for controller in controllers.split(","):
            if controller in V1_CONTROLLERS:
                v1[controller] = path
    return unified, v1


def relative_to_mount(path: str, mount_root: str) -> str:
    """A path from /proc/self/cgroup made relative to what a (container's) mount shows."""
    path = path.strip("/")
    root = mount_root.strip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :].strip("/")
    return path


def working_set(current: int, stat: dict[str, int], inactive_key: str) -> int:
    """Memory usage minus reclaimable inactive file cache (what Kubernetes calls working set)."""
    return max(0, current - stat.get(inactive_key, 0))
