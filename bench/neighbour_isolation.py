"""Which kernel mechanisms keep a neighbour pod's p99 flat beside a CPU-limited noisy pod: a
study by hand on a running shoal node (prints figures; not a test). It is the evidence for the
next step of the sandbox issue's neighbour goal; bench/bench_sandbox.py measures what shoal does
today.

One `shoal server` (API, agent, Envoy) runs a sandboxed web pod behind its Service (the
neighbour, limits 1 CPU) and, per configuration, a noisy sandboxed pod at 100m CPU and 64Mi: a
CPU burner; with `--noisy oom` the OOM loop (children allocating 128 MiB, each OOM-killed); with
`--noisy churn` the same loop allocating 48 MiB, which fits (the memory churn without the kill).
Each configuration applies kernel settings by hand to the
running processes, measures the neighbour's p99 alone vs beside the noisy pod the way the bench
does (sandbox_neighbour.interference: the noisy pod frozen and thawed in A B B A windows, an
open-loop load at 25 % of capacity, with the A/A noise floor), then deletes the noisy pod and
undoes the settings:
  exclusive  the neighbour's threads on CPU 0 only and the noisy pod's on the other CPUs (what
             Kubernetes' static CPU manager does for a Guaranteed pod with whole CPUs);
  idle       the noisy pod's tasks in a top-level cpu cgroup (v1) with its quota and
             cpu.idle=1: a non-idle task waking on its CPU preempts it at once, with no slice
             protection, and it gets the CPU only when nothing else wants it;
  podidle    cpu.idle=1 on the noisy pod's own cgroup, below shoal's parent (so it is idle
             only against its sibling pods, not against Envoy or the client);
  longslice  a 100 ms EEVDF slice for the noisy pod's tasks (sched_setattr), so tasks with
             the default slice may preempt it on wakeup;
  schedidle  SCHED_IDLE for the noisy pod's tasks;
  kernelkill the kernel's OOM killer back in charge of the noisy pod (memory.oom_control
             oom_kill_disable=0, v1), as before the agent killed at the limit itself.
Combine with '+'. Run (root, cgroup v1 cpu hierarchy for `idle`, 2+ CPUs):
`.venv/bin/python bench/neighbour_isolation.py [--configs none,exclusive,idle,exclusive+idle]
[--noisy burn|oom|churn] [--blocks 16] [--seconds 0.75]`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
from loadgen_open import ConstantRate
from sandbox_neighbour import (
    GOAL_SHARE,
    LIMITS,
    MI,
    delete_deployment,
    interference,
    start_neighbour,
    start_noisy,
)

from shoal.agent.sandbox.cgroupfs import parse_mountinfo
from shoal.agent.sandbox.cgroups import release_oom_kills

KNOBS = ("exclusive", "idle", "podidle", "longslice", "schedidle", "kernelkill")
LONG_SLICE_NS = 100_000_000  # the kernel's maximum custom slice
SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}


class SchedAttr(ctypes.Structure):
    """struct sched_attr (include/uapi/linux/sched/types.h)."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


def set_slice(tid: int, nanoseconds: int) -> None:
    """SCHED_OTHER with a custom EEVDF slice (`sched_runtime`, Linux 6.12+)."""
    attr = SchedAttr(size=ctypes.sizeof(SchedAttr), sched_runtime=nanoseconds)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SCHED_SETATTR[platform.machine()], tid, ctypes.byref(attr), 0) != 0:
        raise OSError(ctypes.get_errno(), f"sched_setattr({tid})")


def threads(pid: int) -> list[int]:
    """Every thread of `pid` and of its descendants."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return [int(tid) for p in processes for tid in os.listdir(f"/proc/{p.pid}/task")]


def v1_cgroup(pid: int, controller: str, mount: Path) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return mount / path.lstrip("/")
    raise RuntimeError(f"pid {pid} has no v1 {controller} cgroup")


@contextlib.contextmanager
def applied(knobs: set[str], neighbour: int, noisy: int, mounts: dict[str, str]) -> Iterator[None]:
    """`knobs` applied to the running pods; undone at exit (the noisy pod is gone by then)."""
    undo: list[Callable[[], None]] = []
    cpu_mount = Path(mounts["cpu"]) if "cpu" in mounts else None
    try:
        if "kernelkill" in knobs:
            if "memory" not in mounts:
                raise RuntimeError("`kernelkill` needs cgroup v1's memory hierarchy")
            release_oom_kills(v1_cgroup(noisy, "memory", Path(mounts["memory"])))
        if "exclusive" in knobs:
            everything = set(range(os.cpu_count() or 1))
            for tid in threads(neighbour):
                os.sched_setaffinity(tid, {0})
            for tid in threads(noisy):
                os.sched_setaffinity(tid, everything - {0})
            undo.append(lambda: [os.sched_setaffinity(t, everything) for t in threads(neighbour)])
        if knobs & {"idle", "podidle"}:
            if cpu_mount is None:
                raise RuntimeError("`idle` and `podidle` need cgroup v1's cpu hierarchy")
            own = v1_cgroup(noisy, "cpu", cpu_mount)
            if "podidle" in knobs:
                (own / "cpu.idle").write_text("1")
            if "idle" in knobs:
                top = cpu_mount / f"shoal-isolation-study-{os.getpid()}"
                top.mkdir()
                undo.append(lambda: _remove_top_group(top, own))
                for name in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"):
                    (top / name).write_text((own / name).read_text())
                (top / "cpu.idle").write_text("1")
                for tid in threads(noisy):
                    (top / "tasks").write_text(str(tid))
        if "longslice" in knobs:
            for tid in threads(noisy):
                set_slice(tid, LONG_SLICE_NS)
        if "schedidle" in knobs:
            for tid in threads(noisy):
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        yield
    finally:
        for step in reversed(undo):
            step()


def _remove_top_group(top: Path, own: Path) -> None:
    """Remove the study's top-level group. Its tasks (only if the noisy pod is still there: a
    failure before its deletion) go back to the pod's own cpu cgroup first, so the removal
    cannot time out and hide the failure, nor leave the group in the machine's hierarchy."""
    for tid in (top / "tasks").read_text().split():
        with contextlib.suppress(OSError):  # it exited meanwhile
            (own / "tasks").write_text(tid)
    _rmdir_when_empty(top)


def _rmdir_when_empty(path: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            path.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def study(options: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
    import agent_harness as cluster  # noqa: PLC0415
    import sandbox_harness as boxes  # noqa: PLC0415

    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    configs = [set(filter(None, c.split("+"))) - {"none"} for c in options.configs.split(",")]
    unknown = set().union(*configs) - set(KNOBS)
    if unknown:
        raise SystemExit(f"unknown settings {sorted(unknown)}; known: {', '.join(KNOBS)}")
    noisy_code: tuple[str, str] = {
        "burn": (boxes.CPU_BURN, "-"),
        "oom": (boxes.OOM_LOOP, str(128 * MI)),
        "churn": (boxes.OOM_LOOP, str(48 * MI)),
    }[options.noisy]
    with boxes.searchable_dir("shoal-bench-") as base, boxes.servers_under(base) as start:
        server, app = start(), boxes.install_app(base)
        port, full = start_neighbour(server, app, cluster, boxes)
        neighbour = cluster.pods_of(server.client, "neighbour")[0].status.pid
        rate = round(GOAL_SHARE * full)
        load = {"goal": ConstantRate(port, rate)}
        print(
            f"neighbour at {rate} req/s open loop ({GOAL_SHARE:.0%} of capacity) beside a "
            f"{options.noisy} pod at {LIMITS['cpu']}; {options.blocks} A B B A blocks of "
            f"{options.seconds} s windows per configuration; load average "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )
        for knobs in configs:
            noisy = int(start_noisy(server, cluster, boxes, *noisy_code).status.pid)
            with applied(knobs, neighbour, noisy, mounts.v1):
                time.sleep(0.5)
                figures = interference(load, noisy, blocks=options.blocks, seconds=options.seconds)[
                    "goal"
                ]
                delete_deployment(server, cluster, "noisy")
            print(f"  {'+'.join(sorted(knobs)) or 'none'}: {figures.describe()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="none,exclusive,idle,exclusive+idle")
    parser.add_argument("--noisy", choices=("burn", "oom", "churn"), default="burn")
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=0.75)
    options = parser.parse_args()
    if os.geteuid() != 0 or (os.cpu_count() or 1) < 2:
        raise SystemExit("needs root and at least 2 CPUs")
    study(options)


if __name__ == "__main__":
    main()
