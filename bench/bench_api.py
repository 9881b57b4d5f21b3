"""API benchmark (prints figures; not a test).

Starts a real API server (`python -m shoal.server`, SQLite in a temp data dir) in a
subprocess on a free 127.0.0.1 port, then measures:
  1. writes: create N pods (default 5,000) through the API with concurrent clients
     -> writes/s (goal >= 1,000/s) and p50/p99 latency;
  2. list: list all of them -> p50 (and p99) over repeated lists;
  3. watch fan-out: W watchers (default 100), M writes (default 1,000) -> delivery latency
     from "write sent" to "event line read" by each watcher, p50/p99 (goal p99 < 100 ms).
Besides wall-clock figures it prints the server process's CPU time per operation (from
/proc): on a shared 2-core machine throughput depends on the neighbours and on the bench
client, which competes with the server for the same cores; CPU per operation does less.
The server is stopped by its pid at the end. Run: `.venv/bin/python bench/bench_api.py`;
unknown options go to the server, e.g. `--synchronous NORMAL` (no fsync per commit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
from loadgen import RawConnection, free_port, percentile

PODS = "/api/v1/namespaces/bench/pods"


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {
            "command": ["python3", "-m", "http.server"],
            "ports": [{"name": "http"}],
            "readinessProbe": {"httpGet": {"port": "http", "path": "/healthz"}},
            "env": [{"name": "MODE", "value": "bench"}],
        },
    }


@contextlib.contextmanager
def server(extra_args: list[str]) -> Iterator[tuple[str, int]]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as data_dir:
        command = [
            sys.executable,
            "-m",
            "shoal.server",
            "--data-dir",
            data_dir,
            "--port",
            str(port),
            *extra_args,
        ]
        process = subprocess.Popen(command)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                if process.poll() is not None:
                    raise RuntimeError(f"server exited with {process.returncode}")
                time.sleep(0.1)
            else:
                raise RuntimeError("server did not become healthy in 20 s")
            yield url, process.pid
        finally:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report cost per operation:
    throughput on a shared 2-core machine depends on the neighbours, CPU per request less."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_writes(url: str, pid: int, count: int, concurrency: int) -> None:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def worker(connection: RawConnection) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            started = time.perf_counter()
            status, answer = await connection.post(PODS, pod(f"pod-{index:05d}"))
            latencies.append(time.perf_counter() - started)
            if status != 201:
                raise RuntimeError(f"create failed: {status} {answer[:300]!r}")

    connections = [await RawConnection.open(url) for _ in range(concurrency)]
    cpu, started, own = cpu_seconds(pid), time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(connection) for connection in connections))
    elapsed = time.perf_counter() - started
    cpu, own = cpu_seconds(pid) - cpu, time.process_time() - own
    for connection in connections:
        connection.close()
    print(
        f"writes: {count} pods, {concurrency} concurrent clients: {count / elapsed:,.0f} writes/s "
        f"(goal >= 1,000/s); latency p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms; "
        f"server CPU {cpu / count * 1000:.2f} ms/write, bench client CPU "
        f"{own / count * 1000:.2f} ms/write"
    )


async def bench_list(url: str, pid: int, expected: int, rounds: int) -> None:
    durations: list[float] = []
    cpu = cpu_seconds(pid)
    connection = await RawConnection.open(url)
    for _ in range(rounds):
        started = time.perf_counter()
        status, answer = await connection.request("GET", PODS)
        durations.append(time.perf_counter() - started)
        items = json.loads(answer)["items"]
        if status != 200 or len(items) != expected:
            raise RuntimeError(f"listed {len(items)} pods, expected {expected}")
    connection.close()
    print(
        f"list: {expected} pods, {rounds} rounds: p50 {percentile(durations, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(durations, 0.99) * 1000:.1f} ms (request to last byte); "
        f"server CPU {(cpu_seconds(pid) - cpu) / rounds * 1000:.0f} ms/list"
    )


async def bench_watch(url: str, pid: int, watchers: int, writes: int, concurrency: int) -> None:
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}
    received: list[list[tuple[float, bytes]]] = [[] for _ in range(watchers)]
    async with httpx.AsyncClient(base_url=url) as http:
        start = (await http.get(PODS)).json()["metadata"]["resourceVersion"]
    connected = 0
    all_connected = asyncio.Event()

    async def watch(index: int) -> None:
        nonlocal connected
        connection = await RawConnection.open(url)
        connected += 1
        if connected == watchers:
            all_connected.set()
        got = received[index]
        try:
            async for arrived, line in connection.watch_lines(
                f"{PODS}?watch=true&resourceVersion={start}"
            ):
                got.append((arrived, line))
                if len(got) >= writes:
                    return
        finally:
            connection.close()

    tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
    await asyncio.wait_for(all_connected.wait(), 30)
    await asyncio.sleep(0.5)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(writes):
        queue.put_nowait(index)

    async def writer(connection: RawConnection) -> None:
        while not queue.empty():
            name = f"watched-{queue.get_nowait():05d}"
            sent[name] = time.perf_counter()
            status, answer = await connection.post(PODS, pod(name))
            acked[name] = time.perf_counter()
            if status != 201:
                raise RuntimeError(f"create failed: {status} {answer[:300]!r}")

    connections = [await RawConnection.open(url) for _ in range(concurrency)]
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.gather(*(writer(connection) for connection in connections))
    write_elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    cpu = cpu_seconds(pid) - cpu
    delays, after_ack = [], []
    for got in received:
        for arrived, raw in got:
            event = json.loads(raw)
            name = event["object"]["metadata"].get("name")
            if event["type"] == "ADDED" and name in sent:
                delays.append(arrived - sent[name])
                after_ack.append(max(0.0, arrived - acked[name]))
    expected = watchers * writes
    print(
        f"watch fan-out: {watchers} watchers x {writes} writes ({writes / write_elapsed:,.0f} "
        f"writes/s, {concurrency} writers): {len(delays)}/{expected} events delivered; "
        f"delivery p50 {percentile(delays, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(delays, 0.99) * 1000:.1f} ms (goal p99 < 100 ms); "
        f"from the write's answer p99 {percentile(after_ack, 0.99) * 1000:.1f} ms; "
        f"server CPU {cpu / max(1, len(delays)) * 1e6:.0f} us/event delivered"
    )


async def run(args: argparse.Namespace, url: str, pid: int) -> None:
    print(f"machine load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    await bench_writes(url, pid, args.pods, args.concurrency)
    await bench_list(url, pid, args.pods, args.list_rounds)
    await bench_watch(url, pid, args.watchers, args.watch_writes, args.watch_writers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--list-rounds", type=int, default=20)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--watch-writes", type=int, default=1_000)
    parser.add_argument("--watch-writers", type=int, default=4)
    args, server_args = parser.parse_known_args()
    with server(server_args) as (url, pid):
        asyncio.run(run(args, url, pid))


if __name__ == "__main__":
    main()
