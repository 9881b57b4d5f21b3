"""Sandbox benchmark (prints figures; not a test): what bubblewrap + a cgroup cost a pod.

Driver level (the agent runner's apply -> ready path adds the same constant to both):
  1. start latency: driver.start() -> the pod's HTTP port answers, p50 over N pods (default 20),
     sandbox vs none (goal: sandbox adds < 50 ms);
  2. overhead: requests/s of the pod's tiny HTTP app (stdlib, HTTP/1.1 keep-alive), median of
     alternating rounds, sandbox vs none, with `wrk` when installed (else a Python client, which
     is then the bottleneck and the ratio says less) (goal >= 0.95x).
Needs root, bubblewrap and cgroups. Every pod is stopped by the driver before the next starts.
Run: `.venv/bin/python bench/bench_sandbox.py [--pods 20] [--seconds 3] [--rounds 3]`.
Other load on the machine shows in both columns; the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from shoal.agent.drivers.base import Driver, ProcessSpec, TaskHandle
from shoal.agent.drivers.process import ProcessDriver
from shoal.agent.drivers.sandbox import SandboxDriver
from shoal.agent.sandbox.availability import sandbox_available

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
PY = shutil.which("python3", path=SYSTEM_PATH) or "python3"
APP = textwrap.dedent(
    """
    import os
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else delayed ACKs cap keep-alive at ~25 req/s/conn
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "2")
            self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pod(root: Path, name: str, port: int) -> ProcessSpec:
    workdir = root / name
    workdir.mkdir()
    workdir.chmod(0o777)
    return ProcessSpec(
        argv=[PY, "-c", APP],
        cwd=workdir,
        log_path=root / "logs" / f"{name}.log",
        pod_uid=f"bench-{name}",
        pod_name=name,
        owner="bench",
        env={"PATH": SYSTEM_PATH},
        ports={"": port},
        primary_port=port,
    )


async def start_ready(driver: Driver, spec: ProcessSpec) -> tuple[TaskHandle, float]:
    assert spec.primary_port is not None
    began = time.perf_counter()
    handle = await driver.start(spec)
    assert isinstance(handle, TaskHandle), handle
    deadline = began + 20
    while not answers(spec.primary_port):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{spec.pod_name} never answered: {spec.log_path.read_text()}")
        await asyncio.sleep(0.001)
    return handle, time.perf_counter() - began


async def start_latency(
    drivers: dict[str, Driver], root: Path, pods: int
) -> dict[str, list[float]]:
    """Alternates the drivers pod by pod, so that load from elsewhere hits both alike."""
    seconds: dict[str, list[float]] = {label: [] for label in drivers}
    for index in range(pods):
        for label, driver in drivers.items():
            handle, took = await start_ready(driver, pod(root, f"{label}-{index}", free_port()))
            seconds[label].append(took)
            await driver.stop(handle, 5)
    return seconds


def wrk_rps(port: int, seconds: int, connections: int) -> float:
    done = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if found is None:
        raise RuntimeError(done.stdout)
    return float(found.group(1))


async def python_rps(port: int, seconds: int) -> float:
    count = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal count
        async with httpx.AsyncClient() as http:
            while time.perf_counter() < deadline:
                await http.get(f"http://127.0.0.1:{port}/")
                count += 1

    await asyncio.gather(*(client() for _ in range(8)))
    return count / seconds


async def throughput(
    drivers: dict[str, Driver], root: Path, seconds: int, rounds: int, connections: int
) -> dict[str, float]:
    """Median requests/s per driver over alternating rounds (one pod per driver)."""
    handles: dict[str, tuple[Driver, TaskHandle, int]] = {}
    measured: dict[str, list[float]] = {label: [] for label in drivers}
    try:
        for label, driver in drivers.items():
            spec = pod(root, f"{label}-rps", free_port())
            assert spec.primary_port is not None
            handle, _ = await start_ready(driver, spec)
            handles[label] = (driver, handle, spec.primary_port)
        for _ in range(rounds):
            for label, (_, _, port) in handles.items():
                if shutil.which("wrk"):
                    rps = await asyncio.to_thread(wrk_rps, port, seconds, connections)
                    measured[label].append(rps)
                else:
                    measured[label].append(await python_rps(port, seconds))
    finally:
        for driver, handle, _ in handles.values():
            await driver.stop(handle, 5)
    return {label: statistics.median(values) for label, values in measured.items()}


def ms(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    options = parser.parse_args()
    available, why = sandbox_available()
    if not available:
        raise SystemExit(f"sandbox unavailable: {why}")
    root = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="shoal-bench-sandbox-"))
    os.chmod(root, 0o755)  # the pods' uid must be able to enter it
    sandbox = SandboxDriver(f"bench-{os.getpid()}", cgroup_parent="shoal-bench")
    plain = ProcessDriver()
    try:
        print(f"sandbox: {why}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        drivers: dict[str, Driver] = {"none": plain, "sandbox": sandbox}
        starts = await start_latency(drivers, root, options.pods)
        none_start, sandbox_start = starts["none"], starts["sandbox"]
        added = statistics.median(sandbox_start) - statistics.median(none_start)
        print(
            f"start -> port answering, {options.pods} pods: "
            f"none p50 {ms(none_start, 0.5):.1f} ms p90 {ms(none_start, 0.9):.1f} ms | "
            f"sandbox p50 {ms(sandbox_start, 0.5):.1f} ms p90 {ms(sandbox_start, 0.9):.1f} ms | "
            f"sandbox adds {1000 * added:.1f} ms (goal < 50 ms)"
        )
        tool = f"wrk -c{options.connections}" if shutil.which("wrk") else "python client x8"
        rps = await throughput(drivers, root, options.seconds, options.rounds, options.connections)
        print(
            f"requests/s ({tool}, median of {options.rounds} alternating {options.seconds} s "
            f"rounds): none {rps['none']:,.0f} | sandbox {rps['sandbox']:,.0f} | "
            f"ratio {rps['sandbox'] / rps['none']:.3f}x (goal >= 0.95x)"
        )
    finally:
        for handle in sandbox.managed():
            await sandbox.stop(handle, 0)
        for handle in plain.managed():
            await plain.stop(handle, 0)
        sandbox.remove_node_cgroups()
        shutil.rmtree(root)


if __name__ == "__main__":
    asyncio.run(main())
