"""Progressive delivery, measured against a real `shoal server` (API, controllers, embedded
agent, Envoy) and probe-app pods:

    .venv/bin/python bench/bench_rollouts.py [--runs 20] [--requests 10000] [--detect-runs 3]
        [--only switches|weights|detect]

1. Switch latency of promote (blue-green), undo (back to the warm version) and abort (canary
   at 50 %): from the API write of the request to (a) the first answer of the new version on
   a probe connection polling the Service port, i.e. Envoy routes it (an RDS update applies
   to open connections too), and (b) the rollout status saying every node confirmed it (seen
   on a watch). p50/p99 over `--runs` runs each (goal: p99 < 500 ms to confirmed), and where
   the time went, stage by stage (switch_stages.py).
2. Weight accuracy: a canary paused at 1, 5, 20 and 50 %; the share of `--requests` answers
   (keep-alive, no stickiness) that came from the canary.
3. Time to detect a bad canary (30 % of its answers are 500s) with the envoy success-rate
   analysis, against the bound interval x failureLimit: from the analysis run's start to the
   last canary answer seen by the load, and to Degraded in the status.

Every process is stopped by pid at the end (the server gracefully; leftovers are killed).
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from agent_harness import (
    ShoalServer,
    app_deployment,
    free_port,
    kill_leftovers,
    service,
    under_load,
    wait_for,
)
from switch_stages import Switch, Tracer, breakdown

from shoal.api.analysis import AnalysisRun
from shoal.api.deployment import Deployment
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet
from shoal.api.rollout import ACTION_ANNOTATION, RolloutStatus
from shoal.client import Client
from shoal.controllers.rollback import rollback_template


def finish(server: ShoalServer, namespace: str) -> None:
    """Delete a phase's Deployment and wait for its pods to stop, so that the next phase
    is measured on an idle machine (2 pods per warm version add up)."""
    server.client.delete(Deployment, "web", namespace)
    wait_for(f"the pods of {namespace} to stop",
             lambda: not server.client.list(Pod, namespace).items, timeout=120)  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"  {name:<40} p50 {percentile(ms, 0.5):6.0f} ms   p99 {percentile(ms, 0.99):6.0f} ms"
            f"   max {max(ms):6.0f} ms   (n={len(ms)})")  # fmt: skip


class Prober:
    """One keep-alive connection to a Service port; which version answers now."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def version(self) -> str:
        try:
            self.connection.request("GET", "/version")
            response = self.connection.getresponse()
            response.read()
            return response.getheader("x-version") or ""
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            return ""

    def until(self, wanted: Callable[[str], bool], timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if wanted(self.version()):
                return time.monotonic()
        raise AssertionError("the switch never showed on the Service port")


def rollout_of(client: Client, namespace: str) -> RolloutStatus:
    """The rollout state (an empty one before the controller wrote any)."""
    return client.get(Deployment, "web", namespace).status.rollout or RolloutStatus()


def act(client: Client, namespace: str, verb: str) -> None:
    for _ in range(10):
        deployment = client.get(Deployment, "web", namespace)
        deployment.metadata.annotations[ACTION_ANNOTATION] = f"{verb} {time.time_ns()}"
        try:
            client.update(deployment)
            return
        except Exception:  # a concurrent controller write: read again
            continue


def undo(client: Client, namespace: str) -> None:
    for _ in range(10):
        deployment = client.get(Deployment, "web", namespace)
        sets = client.list(ReplicaSet, namespace).items
        deployment.spec.template = rollback_template(deployment, sets, None)
        try:
            client.update(deployment)
            return
        except Exception:
            continue


Measured = tuple[float, Switch]  # (Envoy serves it, the switch's stamps up to confirmed)


def measure(client: Client, namespace: str, tracer: Tracer, prober: Prober, *, wanted: str,
            request: Callable[[], None]) -> Measured:  # fmt: skip
    before = rollout_of(client, namespace).traffic.version
    began, wall = time.monotonic(), time.time()
    request()
    served = prober.until(lambda v: v == wanted)
    return served - began, tracer.switch(wall, before)


def blue_green_switches(server: ShoalServer, runs: int) -> dict[str, list[Measured]]:
    client, ns = server.client, "bluegreen"
    tracer = Tracer(server.url, ns, "web", server.log)
    port, preview = free_port(), free_port()

    def doc(version: str) -> dict[str, Any]:
        d = app_deployment("web", version=version, replicas=2, namespace=ns)
        d["spec"]["strategy"] = {"type": "BlueGreen", "blueGreen": {
            "previewPort": preview, "scaleDownDelaySeconds": 10}}  # fmt: skip
        return d

    client.apply_all([doc("v0"), service("web", port, ns)])
    wait_for("v0", lambda: rollout_of(client, ns).phase == "Healthy")
    prober = Prober(port)
    out: dict[str, list[Measured]] = {"promote": [], "undo": []}
    for run in range(1, runs + 1):
        client.apply_all([doc(f"v{run}")])
        wait_for("the preview", lambda: rollout_of(client, ns).phase == "Paused", timeout=60)
        out["promote"].append(measure(client, ns, tracer, prober, wanted=f"v{run}",
                                      request=lambda: act(client, ns, "promote")))  # fmt: skip
        wait_for("healthy", lambda: rollout_of(client, ns).phase == "Healthy")
        out["undo"].append(measure(client, ns, tracer, prober, wanted=f"v{run - 1}",
                                   request=lambda: undo(client, ns)))  # fmt: skip
        wait_for("healthy", lambda: rollout_of(client, ns).phase == "Healthy")
        # forward again to the new version (also a switch to a warm one) for the next round
        undo(client, ns)
        wait_for("forward", lambda version=f"v{run}": prober.version() == version)
        wait_for("healthy", lambda: rollout_of(client, ns).phase == "Healthy")
    tracer.close()
    return out


def canary_aborts(server: ShoalServer, runs: int) -> list[Measured]:
    client, ns = server.client, "abort"
    tracer = Tracer(server.url, ns, "web", server.log)
    port = free_port()
    steps = [{"setWeight": 50}, {"pause": {}}]

    def doc(version: str) -> dict[str, Any]:
        d = app_deployment("web", version=version, replicas=2, namespace=ns)
        d["spec"]["strategy"] = {"type": "Canary", "canary": {"steps": steps}}
        return d

    client.apply_all([doc("v1"), service("web", port, ns)])
    wait_for("v1", lambda: rollout_of(client, ns).phase == "Healthy")
    client.apply_all([doc("v2")])
    prober = Prober(port)
    out = []
    for _ in range(runs):
        wait_for("50 %", lambda: (r := rollout_of(client, ns)).phase == "Paused"
                 and r.traffic_confirmed, timeout=60)  # fmt: skip
        before = rollout_of(client, ns).traffic.version
        began, wall = time.monotonic(), time.time()
        act(client, ns, "abort")
        # weight 0: no canary answer in 50 consecutive ones (at 50 % that is 2^-50 by chance)
        streak, served = 0, 0.0
        while streak < 50:
            if prober.version() == "v2":
                streak = 0
            else:
                streak += 1
                served = served if streak > 1 else time.monotonic()
        out.append((served - began, tracer.switch(wall, before)))
        act(client, ns, "retry")
    tracer.close()
    return out


def weight_accuracy(server: ShoalServer, requests: int) -> list[tuple[int, float, int]]:
    client, ns = server.client, "weights"
    port = free_port()
    weights = [1, 5, 20, 50]
    steps: list[dict[str, Any]] = []
    for weight in weights:
        steps += [{"setWeight": weight}, {"pause": {}}]

    def doc(version: str) -> dict[str, Any]:
        d = app_deployment("web", version=version, replicas=2, namespace=ns)
        d["spec"]["strategy"] = {"type": "Canary", "canary": {"steps": steps}}
        return d

    client.apply_all([doc("v1"), service("web", port, ns)])
    wait_for("v1", lambda: rollout_of(client, ns).phase == "Healthy")
    client.apply_all([doc("v2")])
    out = []
    probers = [Prober(port) for _ in range(4)]
    for weight in weights:
        wait_for(f"{weight} %", lambda w=weight: (r := rollout_of(client, ns)).phase == "Paused"
                 and r.traffic.weight == w and r.traffic_confirmed, timeout=60)  # fmt: skip
        canary = 0
        for index in range(requests):
            canary += probers[index % len(probers)].version() == "v2"
        out.append((weight, 100 * canary / requests, requests))
        act(client, ns, "promote")
    return out


def bad_canary(
    server: ShoalServer, namespace: str, interval: float, failure_limit: int
) -> tuple[float, float]:
    client, ns = server.client, namespace
    port = free_port()
    template = {
        "apiVersion": "shoal/v1", "kind": "AnalysisTemplate",
        "metadata": {"name": "success-rate", "namespace": ns},
        "spec": {"metrics": [{
            "name": "success-rate", "interval": f"{interval}s", "count": failure_limit + 5,
            "failureLimit": failure_limit, "successCondition": "result >= 0.95",
            "provider": {"envoy": {"metric": "successRate", "minRequests": 20}}}]},
    }  # fmt: skip
    steps = [{"setWeight": 20}, {"pause": {"duration": "2s"}},
             {"analysis": {"templates": [{"templateName": "success-rate"}]}}]  # fmt: skip

    def doc(version: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        d = app_deployment("web", version=version, replicas=2, namespace=ns, env=env)
        d["spec"]["strategy"] = {"type": "Canary", "canary": {"steps": steps}}
        return d

    client.apply_all([template, doc("v1"), service("web", port, ns)])
    wait_for("v1", lambda: rollout_of(client, ns).phase == "Healthy")
    with under_load(port, clients=4, path="/") as load:
        client.apply_all([doc("v2", {"ERROR_RATE": "0.3"})])
        run_obj = wait_for("the run", lambda: client.list(AnalysisRun, ns).items, timeout=60)[0]
        started = wait_for("its start", lambda: client.get(
            AnalysisRun, run_obj.metadata.name, ns).status.started_at)  # fmt: skip
        start = time.monotonic() - (time.time() - started.timestamp())
        wait_for("Degraded", lambda: rollout_of(client, ns).phase == "Degraded", interval=0.01)
        degraded = time.monotonic()
        wait_for("answers after", lambda: len(load.all(since=degraded + 0.5)) > 200)
    last = max(s.started for s in load.all() if s.version == "v2")
    return last - start, degraded - start


def switch_latency(server: ShoalServer, runs: int) -> None:
    switches = blue_green_switches(server, runs)
    finish(server, "bluegreen")
    aborts = canary_aborts(server, runs)
    finish(server, "abort")
    print(f"switch latency, {runs} runs each (request written -> ...)")
    for name, values in (*switches.items(), ("abort (canary 50 %)", aborts)):
        print(summary(f"{name}: Envoy serves it", [v[0] for v in values]))
        print(summary(f"{name}: all nodes confirmed", [v[1].total for v in values]))
        print("    stages to confirmed (switch_stages.py):")
        print("\n".join(breakdown([v[1] for v in values])))


def detection(server: ShoalServer, runs: int) -> None:
    print("bad canary (30 % errors), envoy success-rate analysis, from its start")
    for interval, limit in ((1.0, 1), (2.0, 2)):
        bound = interval * limit
        for run in range(runs):
            namespace = f"bad-{int(interval)}-{run}"
            weight0, degraded = bad_canary(server, namespace, interval, limit)
            print(
                f"  interval {interval:g}s failureLimit {limit}: weight 0 after "
                f"{weight0:.2f}s, Degraded after {degraded:.2f}s (interval x "
                f"failureLimit = {bound:g}s; acceptance bound {bound + 2:g}s)"
            )
            finish(server, namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--detect-runs", type=int, default=3)
    parser.add_argument("--only", choices=("switches", "weights", "detect"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rollouts-") as tmp:
        server = ShoalServer(Path(tmp))
        server.start()
        try:
            if args.only in (None, "switches"):
                switch_latency(server, args.runs)
            if args.only in (None, "weights"):
                print(f"weight accuracy, {args.requests} requests per weight (no stickiness)")
                for weight, measured, count in weight_accuracy(server, args.requests):
                    print(f"  weight {weight:>3} %: measured {measured:6.2f} % "
                          f"(error {measured - weight:+.2f} points, n={count})")  # fmt: skip
                finish(server, "weights")
            if args.only in (None, "detect"):
                detection(server, args.detect_runs)
        finally:
            server.close()
            code = server.stop()
            leftovers = kill_leftovers(server)
            if code != 0 or leftovers:
                print(f"server exit {code}; leftovers killed: {leftovers}")


if __name__ == "__main__":
    main()
