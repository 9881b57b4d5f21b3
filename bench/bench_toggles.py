"""Feature toggle benchmarks: local evaluation cost and change propagation.

    .venv/bin/python bench/bench_toggles.py [--clients 100] [--rounds 20]

1. Local evaluation in the Python SDK (`ToggleClient.is_enabled`, and the bare engine) of a
   toggle with a 50 % rollout and 2 constraints (country in [...], appVersion semver_gte),
   over 1,000 distinct contexts: ns per evaluation, p50/p99 over batches of 1,000.
   Goal p50 <= 3 us (anchors: flagd Go ~2.2 us, Unleash Java ~0.8 us).
2. Propagation: a real API server process (SQLite); N SDK clients in this process watch it;
   the toggle is flipped `rounds` times and each client records when its snapshot shows the
   flip (a change listener). Latency from just before the PUT; p50/p99/max over all
   observations. Goal p99 < 1 s. All clients share one interpreter (and its GIL), which is
   harsher than N services each with their own.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from shoal.api.featuretoggle import FeatureToggle, FeatureToggleSpec
from shoal.client import Client
from shoal.toggles.client import ToggleClient
from shoal.toggles.engine import compile_toggle, evaluate

NAMESPACE = "bench"
TOGGLE = "new-checkout"
SPEC: dict[str, Any] = {
    "enabled": True,
    "rollout": {"percentage": 50, "stickiness": "userId"},
    "constraints": [
        {"contextName": "country", "operator": "in", "values": ["de", "fr", "nl", "at"]},
        {"contextName": "appVersion", "operator": "semver_gte", "values": ["2.0.0"]},
    ],
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def contexts(count: int) -> list[dict[str, str]]:
    countries = ["de", "fr", "nl", "at", "us"]
    return [
        {"userId": f"user-{i}", "country": countries[i % 5], "appVersion": f"2.{i % 7}.{i % 3}"}
        for i in range(count)
    ]


def time_batches(call: Any, items: list[dict[str, str]], batches: int) -> list[float]:
    """ns per call, one figure per batch of len(items) calls."""
    figures = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for context in items:
            call(context)
        figures.append((time.perf_counter_ns() - start) / len(items))
    return figures


def bench_local(client: ToggleClient) -> None:
    items = contexts(1000)
    toggle = compile_toggle(TOGGLE, FeatureToggleSpec.model_validate(SPEC))
    enabled = sum(evaluate(toggle, c).value for c in items)
    print(f"local evaluation: rollout 50% + 2 constraints, {enabled}/1000 contexts enabled")
    rows = [
        ("engine evaluate()", lambda c: evaluate(toggle, c)),
        ("SDK is_enabled()", lambda c: client.is_enabled(TOGGLE, c)),
    ]
    for label, call in rows:
        time_batches(call, items, 20)  # warm up
        figures = time_batches(call, items, 200)
        print(
            f"  {label:<18} p50 {percentile(figures, 0.5):7.0f} ns   "
            f"p99 {percentile(figures, 0.99):7.0f} ns   (goal p50 <= 3000 ns)"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    # The server's log goes to a file: at shutdown uvicorn reports every watch stream it had
    # to cancel (one per client), which is noise next to the figures.
    command = [sys.executable, "-m", "shoal.server.toggles_routes", "--port", str(port)]
    with log.open("wb") as log_file:
        process = subprocess.Popen([*command, "--data-dir", data_dir], stderr=log_file)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the API server did not start:\n{log.read_text()[-2000:]}")


def bench_propagation(url: str, clients: list[ToggleClient], rounds: int) -> None:
    lock = threading.Lock()
    expected: dict[str, Any] = {"enabled": None, "start": 0.0}
    seen: list[float] = []
    pending: set[int] = set()

    def listener_for(index: int, client: ToggleClient) -> Any:
        def changed() -> None:
            toggle = client.get(TOGGLE)
            now = time.perf_counter()
            with lock:
                if (
                    index in pending
                    and toggle is not None
                    and (toggle.enabled == expected["enabled"])
                ):
                    pending.discard(index)
                    seen.append(now - expected["start"])

        return changed

    for index, client in enumerate(clients):
        client.on_change(listener_for(index, client))
    with Client(url) as api:
        for round_number in range(rounds):
            current = api.get(FeatureToggle, TOGGLE, NAMESPACE)
            current.spec.enabled = not current.spec.enabled
            with lock:
                pending.update(range(len(clients)))
                expected["enabled"] = current.spec.enabled
                expected["start"] = time.perf_counter()
            api.update(current)
            deadline = time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                time.sleep(0.005)
            if pending:
                print(f"  round {round_number}: {len(pending)} clients did not see it in 10 s")
                pending.clear()
            time.sleep(0.05)
    ms = [s * 1000 for s in seen]
    print(
        f"propagation: {len(clients)} SDK clients x {rounds} changes = {len(ms)} observations\n"
        f"  p50 {percentile(ms, 0.5):.1f} ms   p99 {percentile(ms, 0.99):.1f} ms   "
        f"max {max(ms):.1f} ms   mean {statistics.fmean(ms):.1f} ms   (goal p99 < 1000 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="feature toggle benchmarks")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(str(Path(data_dir) / "data"), port, Path(data_dir) / "server.log")
        clients: list[ToggleClient] = []
        try:
            with Client(url) as api:
                api.create(
                    FeatureToggle.from_json(
                        {
                            "kind": "FeatureToggle",
                            "spec": SPEC,
                            "metadata": {"name": TOGGLE, "namespace": NAMESPACE},
                        }
                    )
                )
            clients = [
                ToggleClient(url, NAMESPACE, wait_seconds=0) for _ in range(arguments.clients)
            ]
            if not all(c.wait_ready(20) for c in clients):
                raise SystemExit("SDK clients did not load their snapshot")
            bench_local(clients[0])
            bench_propagation(url, clients, arguments.rounds)
        finally:
            for client in clients:
                client.close()
            os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
