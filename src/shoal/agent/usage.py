"""Resource usage of this node's pods, for `shoal top` (served by the agent's HTTP API).

Called by `shoal.agent.http` (the /usage endpoint). Sandboxed pods are read from their cgroup
(`SandboxDriver.usage`: everything the pod ever started, daemons included); plain pods with
psutil over their process group, all of them in one scan of /proc. CPU is a rate, so it needs
two readings: `UsageSampler` keeps the last one and measures over the time since (at least
`MIN_WINDOW_SECONDS`, waiting that long once when it has no recent reading), so `shoal top`
every few seconds costs one reading and its figure covers the whole time between two calls.
`cpu_millis` (the rate) and `usage_document` (the answer) are pure apart from the node's
memory figures.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

from shoal.agent.drivers.base import Driver
from shoal.agent.drivers.sandbox import SandboxDriver
from shoal.agent.records import PodRecords

MIN_WINDOW_SECONDS = 0.5
MAX_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class PodReading:
    """One pod's counters at one moment (cpu_ns is cumulative)."""

    uid: str
    namespace: str
    name: str
    driver: str
    cpu_ns: int
    memory_bytes: int
    pids: int


@dataclass(frozen=True)
class Reading:
    """Everything read at one moment: the node's busy CPU time and each pod's counters."""

    at: float  # time.monotonic()
    node_busy_ns: int
    pods: Mapping[str, PodReading] = field(default_factory=dict)


def cpu_millis(before_ns: int | None, after_ns: int, seconds: float) -> int | None:
    """Thousandths of a CPU used between two readings of a cumulative counter (pure).

    None when there is no earlier reading or no time passed; a counter that went down (a
    process group lost a member, whose CPU time left with it) counts as idle, not negative."""
    if before_ns is None or seconds <= 0:
        return None
    return max(0, round((after_ns - before_ns) / seconds / 1e6))


def group_usage(pgids: set[int]) -> dict[int, tuple[int, int, int]]:
    """(cpu ns, resident bytes, live processes) per process group, in one scan of /proc."""
    found: dict[int, tuple[int, int, int]] = {}
    if not pgids:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            pgid = os.getpgid(int(entry.name))
        except OSError:
            continue
        if pgid not in pgids:
            continue
        try:
            process = psutil.Process(int(entry.name))
            with process.oneshot():
                if process.status() == psutil.STATUS_ZOMBIE:
                    continue
                times = process.cpu_times()
                rss = process.memory_info().rss
        except psutil.Error:
            continue
        cpu, memory, count = found.get(pgid, (0, 0, 0))
        found[pgid] = (cpu + int((times.user + times.system) * 1e9), memory + rss, count + 1)
    return found


def read_usage(records: PodRecords, drivers: Mapping[str, Driver]) -> Reading:
    """Read every running pod of this node (blocking file reads: call it in a thread)."""
    busy = psutil.cpu_times()
    node_busy = busy.user + busy.nice + busy.system + busy.irq + busy.softirq + busy.steal
    at = time.monotonic()
    running = [record for record in records.all() if record.handle is not None]
    groups = group_usage(
        {r.handle.pgid for r in running if r.handle and r.handle.driver != SandboxDriver.name}
    )
    pods: dict[str, PodReading] = {}
    for record in running:
        handle = record.handle
        assert handle is not None
        driver = drivers.get(handle.driver)
        if isinstance(driver, SandboxDriver):
            usage = driver.usage(handle)
            cpu, memory, pids = usage.cpu_ns, usage.memory_bytes, usage.pids
        else:
            cpu, memory, pids = groups.get(handle.pgid, (0, 0, 0))
        pods[record.uid] = PodReading(
            record.uid, record.namespace, record.name, handle.driver, cpu, memory, pids
        )
    return Reading(at, int(node_busy * 1e9), pods)


class UsageSampler:
    """CPU rates between the last reading and now; concurrent callers share one measurement."""

    def __init__(
        self,
        read: Callable[[], Awaitable[Reading]],
        *,
        min_window: float = MIN_WINDOW_SECONDS,
        max_window: float = MAX_WINDOW_SECONDS,
    ) -> None:
        self._read = read
        self._min, self._max = min_window, max_window
        self._last: Reading | None = None
        self._lock = asyncio.Lock()

    async def measure(self) -> tuple[Reading, Reading]:
        """(earlier, now): `now.at - earlier.at` is at least the minimum window."""
        async with self._lock:
            earlier = self._last
            if earlier is None or time.monotonic() - earlier.at > self._max:
                earlier = await self._read()
            wait = self._min - (time.monotonic() - earlier.at)
            if wait > 0:
                await asyncio.sleep(wait)
            now = await self._read()
            self._last = now
            return earlier, now


def usage_document(
    node: str, earlier: Reading, now: Reading, namespace: str | None = None
) -> dict[str, Any]:
    """The /usage answer from two readings (pure but for the node's memory figures)."""
    seconds = now.at - earlier.at
    memory = psutil.virtual_memory()
    pods = []
    for uid, pod in sorted(now.pods.items(), key=lambda item: (item[1].namespace, item[1].name)):
        if namespace is not None and pod.namespace != namespace:
            continue
        before = earlier.pods.get(uid)
        pods.append(
            {
                "namespace": pod.namespace,
                "name": pod.name,
                "uid": uid,
                "driver": pod.driver,
                "cpuMillis": cpu_millis(before.cpu_ns if before else None, pod.cpu_ns, seconds),
                "cpuSeconds": round(pod.cpu_ns / 1e9, 3),
                "memoryBytes": pod.memory_bytes,
                "pids": pod.pids,
            }
        )
    return {
        "kind": "NodeUsage",
        "node": node,
        "windowSeconds": round(seconds, 3),
        "cpus": psutil.cpu_count() or 1,
        "cpuMillis": cpu_millis(earlier.node_busy_ns, now.node_busy_ns, seconds),
        "memoryBytes": memory.total - memory.available,
        "memoryTotalBytes": memory.total,
        "pods": pods,
    }
