"""Zero downtime, measured: 10 rolling updates of a 3-replica Deployment under keep-alive load
through its Service port, then a kill -9 of one pod's process.

    .venv/bin/python bench/bench_zero_downtime.py [--rollouts 10] [--clients 8] [--post-every 3]

Starts a real `shoal server` (API, controllers, embedded agent, Envoy) on free ports with a temp
data dir, runs tests/apps/probe_app.py pods (readiness every 0.1 s, maxSurge 1,
maxUnavailable 0), and prints total and failed requests, each rollout's seconds (apply until
every old pod is stopped) and, for the kill -9, the seconds until the restarted pod is ready
and routable again and the failed requests around it. Every process is stopped by pid at the
end (the server gracefully, which stops pods and Envoy; leftovers are reported and killed).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from agent_harness import (
    ShoalServer,
    app_deployment,
    free_port,
    pods_of,
    service,
    under_load,
    wait_for,
    wait_rollout,
)
from server_run import running_server


def rollouts(server: ShoalServer, port: int, count: int, clients: int, post_every: int) -> None:
    def deploy(version: str) -> None:
        server.client.apply_all([app_deployment("web", version=version), service("web", port)])

    deploy("v1")
    wait_rollout(server.client, "web")
    seconds = []
    stale = 0
    with under_load(port, clients=clients, post_every=post_every) as load:
        started = time.monotonic()
        for number in range(2, count + 2):
            began = time.monotonic()
            deploy(f"v{number}")
            wait_rollout(server.client, "web")
            seconds.append(time.monotonic() - began)
            done = time.monotonic()
            time.sleep(0.2)
            stale += sum(1 for s in load.all(done) if s.ok and s.version != f"v{number}")
        elapsed = time.monotonic() - started
    print(f"rolling updates: {count} of 3 replicas, {clients} keep-alive clients", end="")
    print(f" (every {post_every}th request a POST)" if post_every else " (GETs)")
    print(f"  requests: {load.total}  failed: {load.failed}  ({load.total / elapsed:.0f} req/s)")
    print(f"  answers from an old version after a rollout was done: {stale}")
    print("  rollout seconds: " + " ".join(f"{s:.2f}" for s in seconds))
    print(f"  median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s")
    if load.errors:
        print(f"  first errors: {load.errors[:5]}")


def kill_one_pod(server: ShoalServer, port: int, clients: int) -> None:
    with under_load(port, clients=clients) as load:
        time.sleep(1.0)
        victim = pods_of(server.client, "web")[0]
        assert victim.status.pid is not None
        before = load.total
        killed = time.monotonic()
        os.kill(victim.status.pid, signal.SIGKILL)

        def back() -> bool:
            pod = next(
                p for p in pods_of(server.client, "web") if p.metadata.uid == victim.metadata.uid
            )
            return pod.status.ready and pod.status.pid not in (None, victim.status.pid)

        wait_for("the killed pod to be ready again", back, interval=0.01)
        recovered = time.monotonic() - killed
        time.sleep(1.0)
        during = load.total - before
    print("kill -9 of one of 3 pods' process (GET load):")
    print(f"  ready and routable again after {recovered:.2f} s (restart back-off 0.5 s)")
    failed_share = 100 * load.failed / max(during, 1)
    print(f"  failed: {load.failed} of {during} requests from the kill on ({failed_share:.3f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--post-every", type=int, default=3, help="0: GETs only")
    args = parser.parse_args()
    with running_server() as server:
        port = free_port()
        rollouts(server, port, args.rollouts, args.clients, args.post_every)
        kill_one_pod(server, port, args.clients)


if __name__ == "__main__":
    main()
