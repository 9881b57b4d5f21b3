"""A neighbour pod's p99 latency beside a misbehaving sandboxed pod (part 4 of
bench/bench_sandbox.py, which starts a real `shoal server` and prints the figures).

The neighbour (a sandboxed web pod behind its Service, through Envoy) gets a paced load of
200 req/s. Two ways to make the noise:
- an always-running noisy pod (an OOM loop: children allocating twice the pod's memory limit,
  OOM-killed one after the other; or, as the control, a CPU burner with the same CPU limit),
  frozen (cgroup freezer) and thawed in windows ordered A B B A: A = frozen (the neighbour
  alone), B = running. A block's p99s are taken over the samples of its two windows of each
  kind, so one block compares ~1200 requests against ~1200; the figure is the median of the
  blocks' ratios, with the ratio of the p99s of all samples pooled beside it;
- the issue's own scenario: a pod whose process allocates twice its memory limit, OOM-killed
  and restarted by its policy (with back-off) again and again: windows alone before and after,
  the crash loop in between; the times between restarts show the back-off.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interleaved import block_order

MI = 2**20
LIMITS = {"memory": "64Mi", "cpu": "100m"}
# The scenario: one process allocating twice its limit (then never exiting by itself).
ALLOCATE = "import sys, time\nblock = b'x' * int(sys.argv[1])\ntime.sleep(600)\n"


def p99_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


@dataclass
class Interference:
    """Per-block p99s alone (a) and crowded (b), and every sample of each kind."""

    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    alone: list[float] = field(default_factory=list)
    crowded: list[float] = field(default_factory=list)
    failures: int = 0

    def describe(self) -> str:
        ratios = sorted(b / a for a, b in zip(self.a, self.b, strict=True) if a)
        median = statistics.median(ratios) if ratios else 0.0
        low, high = (ratios[0], ratios[-1]) if ratios else (0.0, 0.0)
        pooled_a, pooled_b = p99_ms(self.alone), p99_ms(self.crowded)
        return (
            f"p99 alone {pooled_a:.2f} ms, beside it {pooled_b:.2f} ms "
            f"(pooled ratio {pooled_b / pooled_a if pooled_a else 0:.2f}x); median of "
            f"{len(ratios)} ABBA blocks' ratios {median:.2f}x (min-max {low:.2f}-{high:.2f}); "
            f"{len(self.alone) + len(self.crowded)} requests, {self.failures} failed"
        )


def freezer_file(pid: int) -> tuple[Path, str, str]:
    """(file, freeze value, thaw value) of the cgroup freezer of the pod holding `pid`."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        v1 = Path("/sys/fs/cgroup/freezer") / path.lstrip("/") / "freezer.state"
        v2 = Path("/sys/fs/cgroup") / path.lstrip("/") / "cgroup.freeze"
        if "freezer" in controllers.split(","):
            return v1, "FROZEN", "THAWED"
        if controllers == "" and v2.exists():
            return v2, "1", "0"
    raise RuntimeError(f"no freezer cgroup for pid {pid}")


@contextlib.contextmanager
def thawed_at_exit(freezer: tuple[Path, str, str]) -> Iterator[None]:
    try:
        yield
    finally:
        freezer[0].write_text(freezer[2])


def interference(
    boxes: Any, port: int, noisy_pid: int, *, blocks: int, seconds: float
) -> Interference:
    """`blocks` blocks of windows (frozen, running, running, frozen) of a paced load on `port`;
    the noisy pod is left running."""
    figures = Interference()
    freezer = freezer_file(noisy_pid)
    with thawed_at_exit(freezer):
        for _ in range(blocks):
            samples: dict[str, list[float]] = {"alone": [], "crowded": []}
            for kind in block_order("alone", "crowded"):
                freezer[0].write_text(freezer[1] if kind == "alone" else freezer[2])
                load = boxes.PacedLoad(port).run(seconds)
                samples[kind].extend(load.latencies)
                figures.failures += len(load.failures)
            figures.a.append(p99_ms(samples["alone"]))
            figures.b.append(p99_ms(samples["crowded"]))
            figures.alone.extend(samples["alone"])
            figures.crowded.extend(samples["crowded"])
    return figures


@dataclass
class CrashLoop:
    before: list[float] = field(default_factory=list)
    during: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)  # when restartCount went up
    reasons: set[str] = field(default_factory=set)
    failures: int = 0

    def describe(self) -> str:
        alone = p99_ms(self.before + self.after)
        during = p99_ms(self.during)
        gaps = [later - earlier for earlier, later in itertools.pairwise(self.restarts)]
        return (
            f"p99 alone (before and after) {alone:.2f} ms, during the crash loop "
            f"{during:.2f} ms, ratio {during / alone if alone else 0:.2f}x; "
            f"{len(self.restarts)} restarts (lastState {', '.join(sorted(self.reasons))}), "
            f"seconds between them {', '.join(f'{gap:.1f}' for gap in gaps)}; "
            f"{self.failures} failed requests"
        )


def crash_loop(server: Any, cluster: Any, boxes: Any, port: int, *, seconds: float) -> CrashLoop:
    """Neighbour load alone (`seconds`), then beside a pod OOM-killed and restarted by policy
    (2 x `seconds`, from its apply), then alone again after it is deleted."""
    figures = CrashLoop()
    load = boxes.PacedLoad(port).run(seconds)
    figures.before, figures.failures = load.latencies, len(load.failures)
    stop = threading.Event()

    def watch() -> None:
        seen = 0
        while not stop.is_set():
            for pod in cluster.pods_of(server.client, "hog"):
                if pod.status.restart_count > seen:
                    seen = pod.status.restart_count
                    figures.restarts.append(time.monotonic())
                    if pod.status.last_state is not None:
                        figures.reasons.add(str(pod.status.last_state.reason))
            time.sleep(0.05)

    hog = boxes.script_deployment("hog", ALLOCATE, str(2 * 64 * MI), LIMITS)
    watcher = threading.Thread(target=watch, daemon=True)
    server.client.apply_all([hog])
    watcher.start()
    try:
        load = boxes.PacedLoad(port).run(2 * seconds)
        figures.during, figures.failures = load.latencies, figures.failures + len(load.failures)
    finally:
        stop.set()
        watcher.join(timeout=10)
        server.client.request_json("DELETE", "/api/v1/namespaces/default/deployments/hog")
        cluster.wait_for("the hog to go", lambda: not cluster.pods_of(server.client, "hog"))
    load = boxes.PacedLoad(port).run(seconds)
    figures.after, figures.failures = load.latencies, figures.failures + len(load.failures)
    return figures


def neighbour_figures(server: Any, app: Path, blocks: int, cluster: Any, boxes: Any) -> None:
    port = cluster.free_port()
    limits = {"cpu": "1", "memory": "128Mi", "pids": 64}
    neighbour = boxes.app_in_sandbox("neighbour", app, replicas=1, limits=limits)
    server.client.apply_all([neighbour, cluster.service("neighbour", port)])
    cluster.wait_rollout(server.client, "neighbour")
    boxes.PacedLoad(port, clients=2).run(2.0)  # warm up
    noisy = {
        "OOM loop (children allocating 2x its 64Mi limit, 100m CPU)": (
            boxes.OOM_LOOP,
            str(128 * MI),
        ),
        "CPU burner (control, 100m CPU)": (boxes.CPU_BURN, "-"),
    }
    for label, (code, argument) in noisy.items():
        server.client.apply_all([boxes.script_deployment("noisy", code, argument, LIMITS)])
        pod = cluster.wait_for(
            "the noisy pod",
            lambda: next(
                (p for p in cluster.pods_of(server.client, "noisy") if p.status.pid), None
            ),
        )
        time.sleep(1.0)
        figures = interference(boxes, port, pod.status.pid, blocks=blocks, seconds=1.5)
        log = boxes.pod_log(server, pod.metadata.name)
        kills = log.rsplit("oom kills", 1)[1].split()[0] if "oom kills" in log else "0"
        print(
            f"neighbour at 200 req/s beside {label}: {figures.describe()} "
            f"(goal < 1.2x; {kills} OOM kills so far)",
            flush=True,
        )
        server.client.request_json("DELETE", "/api/v1/namespaces/default/deployments/noisy")
        cluster.wait_for("the noisy pod to go", lambda: not cluster.pods_of(server.client, "noisy"))
    loop = crash_loop(server, cluster, boxes, port, seconds=10.0)
    print(
        "neighbour at 200 req/s beside a pod allocating 2x its 64Mi limit, restarted by "
        f"policy: {loop.describe()} (goal < 1.2x)",
        flush=True,
    )
