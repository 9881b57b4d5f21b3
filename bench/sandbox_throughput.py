"""Throughput of a pod's HTTP app, sandbox vs none, on a shared machine (part 2 of
bench/bench_sandbox.py, which starts the pods and prints the figures).

Method: the three pods run side by side (none, a second plain one as the control, sandbox),
pinned to the same CPU(s); the same load generator (wrk with one thread when installed, else
bench/loadgen), pinned to other CPU(s), loads one pod at a time in short rounds ordered in
A B B A blocks (bench/interleaved.py). Two figures per round: requests/s, and requests per
CPU-second of the app (user + system time of its process), which says what a request costs
the app whatever share of the CPU other load left it, so it is the steadier of the two here.
The control comparison (none against none') shows the method's own noise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import psutil
from interleaved import Blocks, run_blocks
from loadgen import HttpLoad

from shoal.agent.drivers.base import Driver, TaskHandle

# Starts one pod of the app with `driver` (name given) and returns its handle and port once
# the port answers.
Starter = Callable[[Driver, str], Awaitable[tuple[TaskHandle, int]]]


def pinned(cpus: set[int]) -> contextlib.AbstractContextManager[None]:
    """Run the block with this process's CPU affinity set to `cpus` (children inherit it)."""

    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus)
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    return scope()


@dataclass(frozen=True)
class Round:
    """One load round: requests answered in `seconds`."""

    requests: int
    seconds: float


def wrk_round(port: int, seconds: int, connections: int, cpus: set[int]) -> Round:
    """One wrk round (one thread, pinned to `cpus`) against 127.0.0.1:`port`."""
    with pinned(cpus):
        done = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        )
    found = re.search(r"(\d+) requests in ([\d.]+)(m?s)", done.stdout)
    if found is None or "Socket errors" in done.stdout or "Non-2xx" in done.stdout:
        raise RuntimeError(f"wrk failed or saw errors:\n{done.stdout}")
    took = float(found.group(2)) / (1000 if found.group(3) == "ms" else 1)
    return Round(int(found.group(1)), took)


def loadgen_round(port: int, seconds: int, connections: int, cpus: set[int]) -> Round:
    """The repository's keep-alive load generator when wrk is not installed (the Python client
    may then be the bottleneck, which shrinks any difference)."""

    async def measure() -> Round:
        load = HttpLoad(port, connections=connections)
        began = time.perf_counter()
        load.start()
        await asyncio.sleep(seconds)
        figures = await load.stop()
        if figures.failed:
            raise RuntimeError(f"load generator saw failures: {figures.describe()}")
        return Round(figures.ok, time.perf_counter() - began)

    with pinned(cpus):
        return asyncio.run(measure())


def app_process(handle: TaskHandle) -> psutil.Process:
    """The pod's app itself: the handle's process (plain) or the one below bubblewrap's two
    (the leaf of the pod's process tree; the app's threads are not children)."""
    leader = psutil.Process(handle.pid)
    leaves = [p for p in [leader, *leader.children(recursive=True)] if not p.children()]
    if len(leaves) != 1:
        raise RuntimeError(f"pod {handle.pod_uid}: expected one app process, found {leaves}")
    return leaves[0]


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of the whole process (every thread, ended ones included)."""
    times = process.cpu_times()
    return float(times.user + times.system)


async def throughput(
    drivers: dict[str, Driver], start: Starter, options: argparse.Namespace
) -> list[tuple[Blocks, Blocks]]:
    """requests/s of the same app as three pods running side by side: `none`, a second plain
    one (`none'`, the control) and `sandbox`, all pinned to the same CPU(s) (`--app-cpus`) and
    loaded in turn by the same pinned load generator (`--load-cpus`), in short interleaved
    rounds: blocks of none, sandbox, sandbox, none, then none, none', none', none. Two metrics
    per round: requests/s, and requests per CPU-second of the app (what one request costs the
    app; unlike requests/s it hardly depends on how much CPU other load left it)."""
    pods = {"none": drivers["none"], "none'": drivers["none"], "sandbox": drivers["sandbox"]}
    handles: list[tuple[Driver, TaskHandle]] = []
    apps: dict[str, tuple[int, psutil.Process]] = {}
    app_cpus, load_cpus = cpu_set(options.app_cpus), cpu_set(options.load_cpus)
    run = wrk_round if shutil.which("wrk") else loadgen_round
    try:
        with pinned(app_cpus):  # the pods inherit the affinity (bwrap and setpriv keep it)
            for label, driver in pods.items():
                handle, port = await start(driver, label.replace("'", "2") + "-rps")
                handles.append((driver, handle))
                apps[label] = (port, app_process(handle))

        def measure(label: str) -> tuple[float, float]:
            port, process = apps[label]
            cpu = cpu_seconds(process)
            done = run(port, options.seconds, options.connections, load_cpus)
            used = cpu_seconds(process) - cpu
            return done.requests / done.seconds, done.requests / used if used else 0.0

        for label in apps:  # warm up each app's threads and the kernel's socket caches
            await asyncio.to_thread(measure, label)
        comparisons = [
            (Blocks("none", "sandbox"), Blocks("none", "sandbox")),
            (Blocks("none", "none'"), Blocks("none", "none'")),
        ]
        await asyncio.to_thread(run_blocks, list(comparisons), options.rounds, measure)
    finally:
        for driver, handle in handles:
            await driver.stop(handle, 5)
    return comparisons


def cpu_set(text: str) -> set[int]:
    """ "0" or "0,1" -> {0} or {0, 1}; "" -> every CPU this process may use."""
    return {int(cpu) for cpu in text.split(",")} if text else os.sched_getaffinity(0)
