"""Live-path cost of a parallel run through the whole system: p99 of live requests while a
ParallelRun mirrors 100 % of them, against the same app without mirroring, interleaved in one
run; then the live requests that fail when the differ is killed mid-run.

    .venv/bin/python bench/bench_parallel_run.py [--rounds 10] [--seconds 15] [--rate 200]
                                                 [--block 50] [--kill-seconds 8]

A real `shoal server` (API, controllers, embedded agent, Envoy) runs two Deployments of
tests/apps/probe_app.py with two live pods each: `mirrored` (strategy ParallelRun,
mirrorPercent 100, a candidate being compared: its Service's route copies every GET to the
differ Pod, which replays each to its comparison Pods, two of v1 and one of v2 under nice 19,
never to the live pods) and `plain` (RollingUpdate, nothing copied).

Rounds: in each of `--rounds` rounds of `--seconds`, one keep-alive client sends `--rate`
GET /price requests per second, alternating blocks of `--block` requests between the two
Service ports (the first block of a round alternates between the ports from one round to the
next), so both see the same machine state at nearly the same time. Per round: p99 of each
port and the delta mirrored - plain (p50 too). Figures: the median of the per-round deltas
and their spread (min..max), the pooled percentiles, failed requests, and what the differ
compared and dropped meanwhile (mirroring was really on, and how much the bounded replay
shed).
Kill: live GETs on the mirrored port for `--kill-seconds`; halfway, the differ Pod's process
gets SIGKILL (by pid); failed live requests are counted (goal 0).

bench/bench_differ.py measures the data plane alone (fast upstreams, no control plane).
Every process started here is stopped by pid.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from agent_harness import (
    ShoalServer,
    app_deployment,
    free_port,
    service,
    wait_for,
)
from server_run import running_server

from shoal.api.deployment import Deployment
from shoal.api.diffreport import DiffReport, DiffReportStatus, report_name
from shoal.api.errors import NotFound
from shoal.api.pod import Pod
from shoal.controllers.parallel_run import DIFFER_LABEL

GOAL_MS = 1.0


def parallel_app(version: str) -> dict[str, Any]:
    doc = app_deployment("mirrored", version=version, replicas=2)
    doc["spec"]["strategy"] = {
        "type": "ParallelRun",
        "parallelRun": {
            "mirrorPercent": 100,
            "minSamples": 10_000_000,  # never decides during the benchmark
            "duration": "1h",
            "compare": {"ignoreFields": ["version"], "ignoreHeaders": ["x-version"]},
        },
    }
    return doc


def report_status(server: ShoalServer, candidate: str) -> DiffReportStatus:
    try:
        return server.client.get(DiffReport, report_name("mirrored", candidate)).status
    except NotFound:
        return DiffReportStatus()


def candidate_of(server: ShoalServer) -> str | None:
    rollout = server.client.get(Deployment, "mirrored").status.rollout
    if rollout is None or rollout.traffic.canary is None:
        return None
    return rollout.new_hash


@dataclass
class Sampler:
    """One keep-alive connection per port; latencies in ms and failures, by port."""

    ports: dict[str, int]
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.connections = {name: self._connect(name) for name in self.ports}
        self.reset()

    def _connect(self, name: str) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.ports[name], timeout=10)

    def reset(self) -> None:
        self.latencies = {name: [] for name in self.ports}
        self.failed = dict.fromkeys(self.ports, 0)

    def get(self, name: str) -> None:
        started = time.perf_counter()
        try:
            self.connections[name].request("GET", "/price")
            response = self.connections[name].getresponse()
            response.read()
            ok = response.status == 200
            if not ok:
                self.errors.append(f"{name}: HTTP {response.status}")
        except (OSError, http.client.HTTPException) as error:
            ok = False
            self.errors.append(f"{name}: {type(error).__name__}: {error}")
            self.connections[name].close()
            self.connections[name] = self._connect(name)
        self.latencies[name].append((time.perf_counter() - started) * 1000)
        self.failed[name] += not ok

    def run(self, order: list[str], seconds: float, rate: float, block: int) -> None:
        """`rate` requests/s for `seconds`, blocks of `block` cycling through `order`."""
        interval = 1.0 / rate
        end = time.monotonic() + seconds
        next_at = time.monotonic()
        sent = 0
        while time.monotonic() < end:
            now = time.monotonic()
            if next_at > now:
                time.sleep(next_at - now)
            next_at += interval
            self.get(order[(sent // block) % len(order)])
            sent += 1

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure_rounds(
    server: ShoalServer, candidate: str, ports: dict[str, int], args: argparse.Namespace
) -> None:
    sampler = Sampler(ports)
    pooled: dict[str, list[float]] = {name: [] for name in ports}
    failed = dict.fromkeys(ports, 0)
    deltas: list[float] = []
    median_deltas: list[float] = []
    before = report_status(server, candidate)
    print(
        f"live GET /price at {args.rate:g}/s, {args.rounds} rounds of {args.seconds:g}s, blocks "
        f"of {args.block} alternating between the ports (one keep-alive client)"
    )
    try:
        for number in range(args.rounds):
            order = ["mirrored", "plain"] if number % 2 == 0 else ["plain", "mirrored"]
            sampler.reset()
            sampler.run(order, args.seconds, args.rate, args.block)
            p99 = {name: percentile(v, 0.99) for name, v in sampler.latencies.items()}
            delta = p99["mirrored"] - p99["plain"]
            deltas.append(delta)
            p50 = {name: statistics.median(v) for name, v in sampler.latencies.items()}
            median_deltas.append(p50["mirrored"] - p50["plain"])
            for name in ports:
                pooled[name] += sampler.latencies[name]
                failed[name] += sampler.failed[name]
            print(
                f"  round {number + 1}: p99 mirrored {p99['mirrored']:6.2f} ms  plain "
                f"{p99['plain']:6.2f} ms  delta {delta:+.2f} ms  (p50 delta "
                f"{median_deltas[-1]:+.2f} ms)"
            )
    finally:
        sampler.close()
    time.sleep(1.5)  # the differ publishes every second
    after = report_status(server, candidate)
    for name, values in pooled.items():
        print(
            f"  {name:9s} n={len(values):5d}  p50 {statistics.median(values):6.2f} ms  "
            f"p90 {percentile(values, 0.90):6.2f} ms  p99 {percentile(values, 0.99):6.2f} ms  "
            f"failed {failed[name]}"
        )
    median = statistics.median(deltas)
    print(
        f"  p99 mirrored - plain: median of {len(deltas)} rounds {median:+.2f} ms "
        f"(spread {min(deltas):+.2f} .. {max(deltas):+.2f} ms; goal < {GOAL_MS:g} ms: "
        f"{'met' if median < GOAL_MS else 'NOT met'})"
    )
    print(
        f"  p50 mirrored - plain: median {statistics.median(median_deltas):+.2f} ms "
        f"(spread {min(median_deltas):+.2f} .. {max(median_deltas):+.2f} ms)"
    )
    mirrored = len(pooled["mirrored"])
    compared = after.compared - before.compared
    dropped = after.dropped - before.dropped
    print(
        f"  the differ compared {compared} and dropped {dropped} of the {mirrored} mirrored "
        f"requests meanwhile (errors {after.errors - before.errors})"
    )
    if sampler.errors:
        print(f"  first errors: {sampler.errors[:5]}")


def differ_pid(server: ShoalServer) -> int | None:
    pods = server.client.list(Pod, "default", selector=f"{DIFFER_LABEL}=mirrored").items
    ready = [p for p in pods if p.status.ready and p.status.pid]
    return ready[0].status.pid if ready else None


def kill_round(server: ShoalServer, ports: dict[str, int], args: argparse.Namespace) -> None:
    pid = differ_pid(server)
    if pid is None:
        print("  kill: no ready differ pod found: SKIPPED")
        return
    sampler = Sampler({"mirrored": ports["mirrored"]})

    def kill_later() -> None:
        time.sleep(args.kill_seconds / 2)
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_later)
    killer.start()
    try:
        sampler.run(["mirrored"], args.kill_seconds, args.rate, args.block)
    finally:
        killer.join()
        sampler.close()
    sent = len(sampler.latencies["mirrored"])
    print(
        f"  differ (pid {pid}) killed with SIGKILL {args.kill_seconds / 2:g}s into "
        f"{args.kill_seconds:g}s of live GETs on the mirrored port: {sent} sent, "
        f"{sampler.failed['mirrored']} failed (goal 0); "
        f"p99 {percentile(sampler.latencies['mirrored'], 0.99):.2f} ms"
    )
    if sampler.errors:
        print(f"  errors: {sampler.errors[:5]}")
    wait_for("the differ restarted", lambda: differ_pid(server) not in (None, pid), 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=15.0, help="per round")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--kill-seconds", type=float, default=8.0)
    args = parser.parse_args()
    with running_server() as server:
        ports = {"mirrored": free_port(), "plain": free_port()}
        server.client.apply_all(
            [
                parallel_app("v1"),
                app_deployment("plain", replicas=2),
                service("mirrored", ports["mirrored"]),
                service("plain", ports["plain"]),
            ]
        )

        def healthy() -> bool:
            rollout = server.client.get(Deployment, "mirrored").status.rollout
            return rollout is not None and rollout.phase == "Healthy"

        wait_for("mirrored v1 healthy", healthy, 60)
        server.client.apply_all([parallel_app("v2")])
        wait_for("the comparison", lambda: candidate_of(server) is not None, 60)
        candidate = candidate_of(server)
        assert candidate is not None

        def differ_reports() -> bool:
            # Requests until the differ (its Pod ready, in Envoy) has compared some.
            with httpx.Client(timeout=10) as client:
                for _ in range(20):
                    client.get(f"http://127.0.0.1:{ports['mirrored']}/price")
            return report_status(server, candidate).compared > 0

        wait_for("the differ's first report", differ_reports, 90)
        measure_rounds(server, candidate, ports, args)
        kill_round(server, ports, args)


if __name__ == "__main__":
    main()
