"""Parallel-run differ benchmarks: comparison throughput on one core, and the live-path cost of
mirroring through Envoy.

    .venv/bin/python bench/bench_differ.py [--seconds 5] [--blocks 40] [--block-size 50]
                                           [--rate 200]

1. Throughput. A `shoal differ` process (nice 0) pinned to one CPU (`sched_setaffinity`);
   three upstream instances (two primaries, one candidate; uvloop, answering ~2 KB JSON bodies
   with a random `requestId`: noise, so every comparison parses and walks the documents) and
   the load generator share the other CPU. Mirrored requests (Host `shop-shadow`) go straight
   to the differ: (a) as fast as 16 keep-alive connections can send them, to find the ceiling
   (the bounded queue drops what the workers cannot take); (b) at a fixed 500 requests/s.
   Figures: compared requests/s (from the differ's /stats), dropped/s, the differ's CPU use and
   compared requests per CPU-second of the differ (what one full core would do, robust when
   the load generator, not the differ, is the limit). Goal >= 500/s.
2. Live-path overhead. A real Envoy (shoal.agent.envoy) with two listeners on one primary
   cluster (two fast upstreams, so that the figure is the data plane's cost and not a Python
   app's jitter): `mirrored` copies 100 % of GET/HEAD to the differ cluster, `plain` does not.
   As a ParallelRun runs it, the differ replays to comparison instances of its own (two
   primaries and a candidate, another upstream process), never to the live ones, and both run
   as background work: a session of their own at nice 19 (autogroup too) and SCHED_IDLE
   (`chrt` where present), the differ with a differ Pod's bounds (50 samples/s, 4 in flight,
   16 queued, the rest dropped and counted). One
   keep-alive client sends `--rate` requests/s, alternating blocks between the two listeners
   in the same run; latency percentiles per listener. Goal: p99 with mirroring < p99 without
   + 1 ms. Blocks rather than single alternating requests keep the background's load inside
   the mirrored figures.

Every process started here is stopped by pid; bench/differ_processes.py starts the upstreams
and the differ.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import uvloop
from differ_processes import answer_template, differ_process, differ_stats, pin, upstreams_process

from shoal.agent.envoy import (
    Destination,
    Endpoint,
    EnvoySupervisor,
    Mirror,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
    XdsWriter,
    apply_and_confirm,
)
from shoal.controllers.parallel_run import BACKGROUND_NICE

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# -- 1. throughput ---------------------------------------------------------------------------
MIRRORED = b"GET /catalog/items?page=2 HTTP/1.1\r\nhost: shop-shadow\r\nuser-agent: bench\r\n\r\n"
ACCEPTED = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"


async def offer(port: int, connections: int, seconds: float, rate: float | None) -> int:
    """Send mirrored requests for `seconds`; `rate` None means as fast as possible."""
    sent = 0
    deadline = time.perf_counter() + seconds

    async def one(number: int) -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        interval = connections / rate if rate else 0.0
        next_at = time.perf_counter() + number * interval / connections
        while time.perf_counter() < deadline:
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += interval
            writer.write(MIRRORED)
            await reader.readexactly(len(ACCEPTED))
            sent += 1
        writer.close()

    await asyncio.gather(*(one(n) for n in range(connections)))
    return sent


def run_fast(work: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(work)


def throughput_window(url: str, port: int, pid: int, rate: float | None, seconds: float) -> None:
    run_fast(offer(port, 16, 1.0, rate))  # warm-up: connections, noise learned
    process = psutil.Process(pid)
    before, cpu_before = differ_stats(url), process.cpu_times()
    started = time.perf_counter()
    sent = run_fast(offer(port, 16, seconds, rate))
    elapsed = time.perf_counter() - started
    after, cpu_after = differ_stats(url), process.cpu_times()
    cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / elapsed
    label = "as fast as possible" if rate is None else f"offered {rate:.0f}/s"
    compared = (after["compared"] - before["compared"]) / elapsed
    dropped = (after["dropped"] - before["dropped"]) / elapsed
    per_core = compared / cpu if cpu else 0.0
    print(
        f"  {label:>20}: sent {sent / elapsed:6.0f}/s  compared {compared:6.0f}/s  "
        f"dropped {dropped:5.0f}/s  differ CPU {cpu * 100:3.0f}% of one core "
        f"= {per_core:5.0f} compared per CPU-second  (diff rate {after['diffRate']:.3f})"
    )


def bench_throughput(seconds: float) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    differ_cpu, other_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (None, None)
    if other_cpu is not None:
        pin(other_cpu)
    try:
        _throughput(seconds, differ_cpu, other_cpu)
    finally:
        os.sched_setaffinity(0, cpus)


def _throughput(seconds: float, differ_cpu: int | None, other_cpu: int | None) -> None:
    body = len(answer_template().split(b"\r\n\r\n", 1)[1])
    print(
        f"1. differ throughput ({body} B JSON answers with a random requestId; "
        f"differ on CPU {differ_cpu}, upstreams + load generator on CPU {other_cpu})"
    )
    with upstreams_process("v1,v1,v2") as ports:
        port = free_port()
        with differ_process(port, ports[:2], ports[2:], differ_cpu, nice=0) as (url, pid):
            throughput_window(url, port, pid, None, seconds)
            throughput_window(url, port, pid, 500.0, seconds)


# -- 2. live-path overhead -------------------------------------------------------------------
@dataclass(frozen=True)
class Load:
    blocks: int
    size: int
    rate: float  # requests/s, 0 = back to back (closed loop)


def measure_blocks(ports: dict[str, int], load: Load) -> dict[str, list[float]]:
    """Alternate blocks of `load.size` requests between the listeners; ms per request."""
    latencies: dict[str, list[float]] = {name: [] for name in ports}
    clients = {name: httpx.Client(base_url=f"http://127.0.0.1:{p}") for name, p in ports.items()}
    interval = 1 / load.rate if load.rate else 0.0
    try:
        for client in clients.values():  # warm-up
            for _ in range(50):
                client.get("/price")
        next_at = time.perf_counter()
        for block in range(load.blocks * len(clients)):
            name = list(clients)[block % len(clients)]
            client = clients[name]
            for _ in range(load.size):
                if interval:
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.perf_counter()))
                started = time.perf_counter()
                answer = client.get("/price")
                latencies[name].append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200 and answer.headers["x-version"] == "v1"
    finally:
        for client in clients.values():
            client.close()
    return latencies


async def bench_overhead(load: Load) -> None:
    pace = f"{load.rate:.0f} requests/s" if load.rate else "back to back"
    print(
        f"2. live-path overhead through Envoy ({load.blocks} blocks x {load.size} requests "
        f"per listener, {pace}, one keep-alive client)"
    )
    with (
        tempfile.TemporaryDirectory() as directory,
        upstreams_process("v1,v1") as live,
        upstreams_process("v1,v1,v2", background=True) as compare,
    ):
        differ_port = free_port()
        with differ_process(
            differ_port, compare[:2], compare[2:], None, nice=BACKGROUND_NICE, as_pod=True
        ) as (differ_url, _):
            await _with_envoy(Path(directory), live, differ_port, differ_url, load)


async def _with_envoy(
    root: Path, primaries: list[int], differ_port: int, differ_url: str, load: Load
) -> None:
    admin_port = free_port()
    writer = XdsWriter(root / "envoy")
    bootstrap = writer.write_bootstrap(node_id="bench", node_cluster="shoal", admin_port=admin_port)
    supervisor = EnvoySupervisor(
        bootstrap=bootstrap,
        admin_port=admin_port,
        state_file=root / "envoy.state.json",
        log_file=root / "envoy.log",
    )
    await supervisor.start()
    try:
        ports = {"mirrored": free_port(), "plain": free_port()}
        route = (Route(Destination.single("primary")),)
        table = RoutingTable(
            (
                ServiceListener("mirrored", ports["mirrored"], route, mirror=Mirror("differ", 100)),
                ServiceListener("plain", ports["plain"], route),
            ),
            (
                UpstreamCluster("primary", tuple(Endpoint("127.0.0.1", p) for p in primaries)),
                UpstreamCluster("differ", (Endpoint("127.0.0.1", differ_port),)),
            ),
        )
        await apply_and_confirm(writer, supervisor.admin, table)
        latencies = await asyncio.to_thread(measure_blocks, ports, load)
        stats = differ_stats(differ_url)
    finally:
        await supervisor.stop()
    for name, values in latencies.items():
        print(
            f"  {name:>9}: n={len(values)}  p50 {percentile(values, 0.5):.3f} ms  "
            f"p99 {percentile(values, 0.99):.3f} ms  max {max(values):.3f} ms"
        )
    delta = percentile(latencies["mirrored"], 0.99) - percentile(latencies["plain"], 0.99)
    print(f"  p99 mirrored - plain: {delta:+.3f} ms (goal < +1 ms)")
    print(
        f"  differ meanwhile: received {stats['received']:.0f}, compared {stats['compared']:.0f}, "
        f"dropped {stats['dropped']:.0f}, diff rate {stats['diffRate']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--block-size", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0, help="live requests/s, 0 = no pause")
    args = parser.parse_args()
    bench_throughput(args.seconds)
    asyncio.run(bench_overhead(Load(args.blocks, args.block_size, args.rate)))


if __name__ == "__main__":
    main()
