"""Density: 200 pods of a tiny HTTP app on one node. Prints apply -> all ready seconds, the idle
CPU of server + embedded agent + Envoy over 30 s (goal < 5 % of one core), the server's RSS
(goal < 200 MB) and how long the graceful stop of everything takes.

    .venv/bin/python bench/bench_density.py [--pods 200] [--idle 30] [--period 2] [--http]

Starts a real `shoal server` (API, controllers, embedded agent, Envoy) on free ports with a temp
data dir and applies one Deployment of --pods replicas plus its Service. The app is a few lines
of stdlib Python (`python -S`, one socket, answers 200 and closes). Readiness is a tcpSocket
probe every --period seconds (--http: an httpGet probe), so the idle figure includes
--pods / --period probes per second. "Ready" is the Deployment's availableReplicas, i.e. every
pod passed readiness and Envoy confirmed it routes to it; Envoy's /clusters is checked too.
The server is stopped gracefully at the end (it stops every pod and Envoy; leftovers are
reported and killed by pid).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from agent_harness import ShoalServer, free_port, kill_leftovers, service, wait_for

from shoal.api.deployment import Deployment

TINY_APP = """
import os, socket
ANSWER = b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\nconnection: close\\r\\n\\r\\nok"
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(os.environ["PORT"])))
server.listen(128)
while True:
    connection, _ = server.accept()
    try:
        connection.recv(65536)
        connection.sendall(ANSWER)
    except OSError:
        pass
    connection.close()
"""


def deployment(pods: int, period: float, http: bool) -> dict[str, Any]:
    check: dict[str, Any] = (
        {"httpGet": {"path": "/", "port": "http"}} if http else {"tcpSocket": {"port": "http"}}
    )
    return {
        "apiVersion": "shoal/v1",
        "kind": "Deployment",
        "metadata": {"name": "tiny"},
        "spec": {
            "replicas": pods,
            "selector": {"matchLabels": {"app": "tiny"}},
            "template": {
                "metadata": {"labels": {"app": "tiny"}},
                "spec": {
                    "isolation": "none",
                    "command": [sys.executable, "-S", "-c", TINY_APP],
                    "ports": [{"name": "http"}],
                    "readinessProbe": {**check, "periodSeconds": period},
                    "terminationGracePeriodSeconds": 5,
                },
            },
        },
    }


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement")
    parser.add_argument("--period", type=float, default=2.0, help="readiness periodSeconds")
    parser.add_argument("--http", action="store_true", help="httpGet readiness, not tcpSocket")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as temp:
        server = ShoalServer(Path(temp))
        port = free_port()
        try:
            server.start()
            began = time.monotonic()
            server.client.apply_all(
                [deployment(args.pods, args.period, args.http), service("tiny", port)]
            )

            def all_ready() -> bool:
                status = server.client.get(Deployment, "tiny").status
                return bool(status.available_replicas == args.pods)

            wait_for(f"{args.pods} ready pods", all_ready, timeout=600, interval=0.2)
            ready_seconds = time.monotonic() - began
            text = httpx.get(f"{server.envoy_admin()}/clusters", timeout=10).text
            flags = [line for line in text.splitlines() if line.startswith("default.tiny.all::")]
            healthy = sum(1 for line in flags if line.endswith("::health_flags::healthy"))
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
            print(f"{args.pods} pods: apply -> all ready and in Envoy {ready_seconds:.1f} s"
                  f" (Envoy lists {healthy} healthy hosts)")  # fmt: skip

            time.sleep(5.0)  # let the start-up burst settle (events, status writes)
            envoy_pid = server.envoy_pid()
            assert envoy_pid is not None
            parts = {"server+agent": psutil.Process(server.pid), "envoy": psutil.Process(envoy_pid)}
            before = {name: cpu_seconds([p]) for name, p in parts.items()}
            time.sleep(args.idle)
            used = {name: cpu_seconds([p]) - before[name] for name, p in parts.items()}
            total = sum(used.values())
            probes = f"{args.pods / args.period:.0f} {'httpGet' if args.http else 'tcp'} probes/s"
            print(f"idle CPU over {args.idle:.0f} s ({probes}): "
                  f"{100 * total / args.idle:.2f} % of one core (goal < 5 %)")  # fmt: skip
            for name, seconds in used.items():
                print(f"  {name}: {100 * seconds / args.idle:.2f} %")
            rss = parts["server+agent"].memory_info().rss
            print(f"server+agent RSS: {rss / 2**20:.0f} MB (goal < 200 MB);"
                  f" Envoy RSS: {parts['envoy'].memory_info().rss / 2**20:.0f} MB")  # fmt: skip
        finally:
            server.close()
            stopping = time.monotonic()
            if server.running():
                code = server.stop(timeout=300)
                print(f"graceful stop of server, {args.pods} pods and Envoy: "
                      f"{time.monotonic() - stopping:.1f} s (exit code {code})")  # fmt: skip
            leaked = kill_leftovers(server)
            print(f"LEAKED (killed now): {leaked}" if leaked else "nothing left running")


if __name__ == "__main__":
    main()
