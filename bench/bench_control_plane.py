"""Control-plane overhead: `apply` of a 3-replica Deployment + Service until all 3 pods are
Ready (readiness passed AND Envoy confirmed it routes to them), minus the app's own start time
(process start until it accepts connections, measured on its own). Goal: < 300 ms.

    .venv/bin/python bench/bench_control_plane.py [--runs 7] [--period 0.02]

Starts a real `shoal server` on free ports with a temp data dir; each run applies a fresh
Deployment of tests/apps/probe_app.py (readiness: httpGet /healthz every --period seconds; the
first probe comes at initialDelaySeconds = 0, so a pod waits at most one period after it
listens) and its Service, times it through a Pod watch, checks Envoy's /clusters lists the 3
pods, and deletes it. The app's own start time is measured directly, as often: 3 copies
started at once until all listen (what the 3 pods do; the overhead is computed against this),
and one copy alone (printed too).
Prints each run and the medians. Every process is stopped by pid (the server gracefully).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from agent_harness import (
    PROBE_APP,
    ShoalServer,
    app_deployment,
    free_port,
    service,
    wait_for,
)
from server_run import running_server

from shoal.api.deployment import Deployment
from shoal.api.pod import Pod
from shoal.client import AsyncClient


def app_start_seconds(count: int) -> float:
    """`count` copies of the app started at once, until every one accepts connections (the
    pods of a Deployment start together and share the machine's cores)."""
    ports = [free_port() for _ in range(count)]
    began = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, str(PROBE_APP)],
            env={**os.environ, "PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        waiting = set(ports)
        while waiting:
            for port in list(waiting):
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        waiting.discard(port)
            time.sleep(0.001)
        return time.monotonic() - began
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


async def one_run(server: ShoalServer, name: str, period: float) -> float:
    """Seconds from the apply call until the 3rd pod is Ready (seen through a watch)."""
    readiness = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": period}
    deployment = app_deployment(name, readiness=readiness)
    port = free_port()
    async with AsyncClient(server.url) as client:
        revision = (await client.list(Pod, "default")).revision
        ready: set[str] = set()
        done = asyncio.Event()
        finished_at = 0.0

        async def watch() -> None:
            nonlocal finished_at
            async for event in client.watch(Pod, "default", since=revision):
                pod = event.object
                if pod.metadata.labels.get("app") == name and pod.status.ready:
                    ready.add(pod.metadata.name)
                if len(ready) == 3 and not done.is_set():
                    finished_at = time.monotonic()
                    done.set()
                    return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.05)  # the watch is open
        began = time.monotonic()
        await client.apply_all([deployment, service(name, port)])
        await asyncio.wait_for(done.wait(), 30)
        watcher.cancel()
        hosts = [p.status.host_port for p in (await client.list(Pod, "default")).items]
        listed = [h for h in hosts if h is not None and server.envoy_lists(h)]
        assert len(listed) >= 3, f"Envoy lists {listed} of {hosts}"
        await client.delete(Deployment, name)
        await client.request_json("DELETE", f"/api/v1/namespaces/default/services/{name}")
    return finished_at - began


async def gone(server: ShoalServer) -> bool:
    async with AsyncClient(server.url) as client:
        return not (await client.list(Pod, "default")).items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--period", type=float, default=0.02, help="readiness periodSeconds")
    args = parser.parse_args()
    rows: list[tuple[float, float, float]] = []
    with running_server() as server:
        for run in range(args.runs):
            # Interleaved, so that other load on the machine hits both sides alike.
            alone, together = app_start_seconds(1), app_start_seconds(3)
            total = asyncio.run(one_run(server, f"cp{run}", args.period))
            rows.append((total, together, alone))
            print(
                f"run {run + 1}: apply -> 3 ready and in Envoy {1000 * total:4.0f} ms;"
                f" app start: 3 at once {1000 * together:4.0f} ms, alone {1000 * alone:3.0f} ms"
            )
            wait_for("the pods to be gone", lambda: asyncio.run(gone(server)))
    median = statistics.median
    print(f"apply -> 3 ready and in Envoy (median):  {1000 * median(r[0] for r in rows):.0f} ms")
    print(f"app start, 3 at once / alone (median):   {1000 * median(r[1] for r in rows):.0f}"
          f" / {1000 * median(r[2] for r in rows):.0f} ms")  # fmt: skip
    overhead = 1000 * median(r[0] - r[1] for r in rows)
    print(f"control-plane overhead, median of (apply->ready - 3 at once): {overhead:.0f} ms"
          " (goal < 300)")  # fmt: skip
    print(
        f"  median of (apply->ready - one alone): {1000 * median(r[0] - r[2] for r in rows):.0f} ms"
    )


if __name__ == "__main__":
    main()
