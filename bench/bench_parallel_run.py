"""Live-path cost of a parallel run through the whole system: p99 of live requests while a
ParallelRun mirrors 100 % of them to the differ, against the same app without mirroring, in
one run.

    .venv/bin/python bench/bench_parallel_run.py [--seconds 20] [--rate 200] [--block 50]

A real `shoal server` (API, controllers, embedded agent, Envoy) runs two Deployments of
tests/apps/probe_app.py with two pods each: `mirrored` (strategy ParallelRun, mirrorPercent
100, a candidate being compared: its Service's route copies every GET to the differ Pod, which
replays each to two primaries and the candidate) and `plain` (RollingUpdate, nothing copied).
One keep-alive client sends `--rate` GET /price requests per second, alternating blocks of
`--block` requests between the two Service ports, so both see the same machine state.
Figures: p50/p90/p99 per port, failed requests, and what the differ compared meanwhile.
bench/bench_differ.py measures the same at the Envoy level (no control plane, fast upstreams).
Every process started here is stopped by pid.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from agent_harness import (
    ShoalServer,
    app_deployment,
    free_port,
    kill_leftovers,
    service,
    wait_for,
)

from shoal.api.deployment import Deployment
from shoal.api.diffreport import DiffReport, report_name
from shoal.api.errors import NotFound


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


def compared(server: ShoalServer, candidate: str) -> int:
    try:
        return server.client.get(DiffReport, report_name("mirrored", candidate)).status.compared
    except NotFound:
        return 0


def candidate_of(server: ShoalServer) -> str | None:
    rollout = server.client.get(Deployment, "mirrored").status.rollout
    if rollout is None or rollout.traffic.canary is None:
        return None
    return rollout.new_hash


def measure(ports: dict[str, int], seconds: float, rate: float, block: int) -> dict[str, Any]:
    connections = {
        name: http.client.HTTPConnection("127.0.0.1", p, timeout=10) for name, p in ports.items()
    }
    latencies: dict[str, list[float]] = {name: [] for name in ports}
    failed = dict.fromkeys(ports, 0)
    interval = 1.0 / rate
    names = list(ports)
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    sent = 0
    while time.monotonic() < end:
        name = names[(sent // block) % len(names)]
        now = time.monotonic()
        if next_at > now:
            time.sleep(next_at - now)
        next_at += interval
        started = time.perf_counter()
        try:
            connections[name].request("GET", "/price")
            response = connections[name].getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            connections[name].close()
            connections[name] = http.client.HTTPConnection("127.0.0.1", ports[name], timeout=10)
        latencies[name].append((time.perf_counter() - started) * 1000)
        failed[name] += not ok
        sent += 1
    for connection in connections.values():
        connection.close()
    return {"latencies": latencies, "failed": failed}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--block", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as temp:
        server = ShoalServer(Path(temp))
        ports = {"mirrored": free_port(), "plain": free_port()}
        try:
            server.start()
            plain = app_deployment("plain", replicas=2)
            server.client.apply_all(
                [
                    parallel_app("v1"),
                    plain,
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
                return compared(server, candidate) > 0

            wait_for("the differ's first report", differ_reports, 60)
            before = compared(server, candidate)
            result = measure(ports, args.seconds, args.rate, args.block)
            time.sleep(1.5)  # the differ publishes every second
            done = compared(server, candidate) - before
            print(
                f"live GET /price at {args.rate:g}/s for {args.seconds:g}s, blocks of "
                f"{args.block} alternating between the ports (one keep-alive client)"
            )
            for name, values in result["latencies"].items():
                print(
                    f"  {name:9s} n={len(values):5d}  p50 {statistics.median(values):6.2f} ms  "
                    f"p90 {percentile(values, 0.90):6.2f} ms  "
                    f"p99 {percentile(values, 0.99):6.2f} ms  failed {result['failed'][name]}"
                )
            p99 = {name: percentile(v, 0.99) for name, v in result["latencies"].items()}
            print(f"  p99 mirrored - plain: {p99['mirrored'] - p99['plain']:+.2f} ms (goal < 1 ms)")
            print(f"  the differ compared {done} requests meanwhile")
        finally:
            server.close()
            if server.running():
                server.stop()
            leaked = kill_leftovers(server)
            if leaked:
                print(f"LEAKED (killed now): {leaked}")


if __name__ == "__main__":
    main()
