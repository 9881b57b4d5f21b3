"""Reconcile benchmark: a Deployment of 200 replicas, from apply to 200 Pod objects.

Starts a bare API server (`python -m shoal.server`, SQLite in a temporary data dir) as a
subprocess on a free 127.0.0.1 port, runs the controllers in this process against it through
the HTTP client (as `shoal server` does), applies the Deployment and counts Pod ADDED events on
a watch until 200 exist. A Ready node is registered first, as the server's embedded agent
does, so the scheduler binds the pods meanwhile (the realistic load). Prints the seconds
(goal < 2 s) and stops the server by its pid.

    .venv/bin/python bench/bench_reconcile.py [--replicas 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from typing import Any

import httpx

from shoal.api.meta import Condition
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.client import AsyncClient
from shoal.controllers.manager import run_controllers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manifest(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"command": ["sleep", "3600"]},
            },
        },
    }


async def wait_healthy(url: str, server: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            if server.returncode is not None:
                raise RuntimeError("the API server exited at start")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError("the API server did not become healthy")


async def register_node(url: str) -> None:
    """The server's own node, Ready, as the embedded agent registers it: pods get bound."""
    async with AsyncClient(url) as api:
        node: Node = Node.new("bench-node", namespace=None)
        created = await api.create(node)
        created.status.allocatable.cpu = "64"
        created.status.allocatable.memory = "256Gi"
        created.status.allocatable.pods = 10_000
        created.status.conditions = [Condition(type="Ready", status="True")]
        await api.update_status(created)


async def one_run(url: str, name: str, replicas: int) -> float:
    async with AsyncClient(url) as api, AsyncClient(url) as watcher:
        start_revision = (await api.list(Pod, "default")).revision
        seen: set[str] = set()

        async def count() -> None:
            async for event in watcher.watch(Pod, "default", since=start_revision):
                if event.type == "ADDED" and event.object.metadata.name.startswith(name + "-"):
                    seen.add(event.object.metadata.name)
                    if len(seen) >= replicas:
                        return

        counting = asyncio.create_task(count())
        await asyncio.sleep(0.1)  # the watch is open before the clock starts
        began = time.perf_counter()
        await api.apply(manifest(name, replicas))
        await asyncio.wait_for(counting, 60)
        elapsed = time.perf_counter() - began
        # Let the scheduler finish binding before the next run, so runs do not overlap.
        for _ in range(300):
            listed = await api.list(Pod, "default")
            if all(p.spec.node_name for p in listed.items):
                break
            await asyncio.sleep(0.1)
        return elapsed


async def main(replicas: int, runs: int) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shoal.server",
            "--data-dir",
            data_dir,
            "--port",
            str(port),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        stop = asyncio.Event()
        try:
            await wait_healthy(url, server)
            await register_node(url)
            async with AsyncClient(url) as controllers_api:
                controllers = asyncio.create_task(run_controllers(controllers_api, stop=stop))
                results = [await one_run(url, f"bench{i}", replicas) for i in range(runs)]
                stop.set()
                await asyncio.wait_for(controllers, 10)
        finally:
            os.kill(server.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(server.wait(), 10)
            except TimeoutError:
                os.kill(server.pid, signal.SIGKILL)
                await server.wait()
    for i, seconds in enumerate(results):
        print(f"run {i + 1}: apply -> {replicas} Pod objects: {seconds:.3f} s")
    best = min(results)
    print(
        f"reconcile: deployment of {replicas} replicas -> {replicas} pods: "
        f"best {best:.3f} s, median {sorted(results)[len(results) // 2]:.3f} s "
        f"(goal < 2 s: {'met' if best < 2 else 'NOT met'})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.replicas, args.runs))
