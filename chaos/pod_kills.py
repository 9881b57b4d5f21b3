"""Scenario 3, random pod kills under load (after chaoskube): every 2 s for 60 s one random
pod's process gets SIGKILL while keep-alive clients send requests through the Service port.

Promises: >= 99.9 % of requests succeed (Envoy retries connect failures and resets of
idempotent requests on another pod; outlier detection ejects the dead one), and the number of
ready pods is back to the target within 2 s of each kill (the agent restarts the process, the
readiness probe passes, Envoy confirms the endpoint).

The victim is a random pod among those not killed in the last 12 s. A process that dies again
within 10 s of its restart is crash-looping by the agent's restart policy (shoal.agent.restarts:
backoff 0.5 s, 1 s, 2 s ... reset after a 10 s run), and its deliberate backoff is not what the
2 s promise is about; 7 replicas leave enough stable pods for a kill every 2 s.

Test of the test (`--sabotage`): the same with SHOAL_TEST_DISABLE_RETRIES=1 in the agent's
environment (Envoy routes without retries) must break the success promise.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from typing import Any

import psutil
from bench.loadgen import HttpLoad, free_port

from chaos.harness import Cluster, Context, Result, deployment, is_ready, list_items, say, service
from shoal.agent.envoy.config import DISABLE_RETRIES_VARIABLE

TITLE = "random pod kills every 2 s under load"
SABOTAGE = "no Envoy retries"
REPLICAS = 7
STABLE_AFTER = 12.0  # > the restart policy's 10 s reset, plus the restart itself
SUCCESS_GOAL = 0.999
RECOVERY_LIMIT = 2.0
REQUEST_MS = 50


def serving_pids(pods: list[dict[str, Any]]) -> set[int]:
    """pids of ready pods whose process is alive."""
    pids = set()
    for pod in pods:
        pid = (pod.get("status") or {}).get("pid")
        if is_ready(pod) and pid and psutil.pid_exists(pid):
            pids.add(pid)
    return pids


async def recovery_time(cluster: Cluster, killed: int, killed_at: float, within: float) -> float:
    """Seconds from the kill until REPLICAS ready pods run, none of them the killed pid."""
    while time.monotonic() - killed_at < within:
        pods = await list_items(cluster.client, "pods", "app=web")
        pids = serving_pids(pods)
        if len(pids) >= REPLICAS and killed not in pids:
            return time.monotonic() - killed_at
        await asyncio.sleep(0.02)
    return float("inf")


async def run(ctx: Context, result: Result) -> None:
    seconds = 8 if ctx.short else 60
    env = {DISABLE_RETRIES_VARIABLE: "1"} if ctx.sabotage else {}
    cluster = Cluster(ctx, env=env)
    try:
        await cluster.start()
        port = free_port()
        await cluster.apply(deployment("web", REPLICAS), service("web", port))
        await cluster.wait_rollout("web", "", REPLICAS, 60)
        # Each request takes 50 ms, so a killed pod has requests in flight (~3.5 of the ~25
        # in flight across 7 pods): their resets are what Envoy's retries must cover, beside
        # the connections refused until the dead pod is ejected or withdrawn. (With 2 ms
        # requests, once ejections applied at once, only ~1.5 requests per kill failed without
        # retries: too few for the test of the test to break 99.9 % reliably in 4 kills.)
        load = HttpLoad(port, connections=32, rate=500, path=f"/slow?ms={REQUEST_MS}")
        load.start()
        await asyncio.sleep(1)
        measures: list[asyncio.Task[float]] = []
        last_killed: dict[str, float] = {}  # pod uid -> time of its last kill
        kills = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            pods = await list_items(cluster.client, "pods", "app=web")
            now = time.monotonic()
            eligible = [
                p for p in pods
                if serving_pids([p]) and now - last_killed.get(p["metadata"]["uid"], -1e9)
                > STABLE_AFTER
            ]  # fmt: skip
            if eligible:
                pod = random.choice(eligible)
                victim = int(pod["status"]["pid"])
                last_killed[pod["metadata"]["uid"]] = with_kill = time.monotonic()
                os.kill(victim, signal.SIGKILL)  # the pod's own process, by its pid
                kills += 1
                measures.append(asyncio.create_task(recovery_time(cluster, victim, with_kill, 15)))
            await asyncio.sleep(max(0.0, started + kills * 2.0 - time.monotonic()))
        times = await asyncio.gather(*measures)
        await asyncio.sleep(1)
        figures = await load.stop()
        slow = [f"{t:.2f}s" for t in times if t > RECOVERY_LIMIT]
        share = figures.success_share()
        say(
            f"{kills} kills in {seconds}s; back to {REPLICAS} ready after: "
            + ", ".join(f"{t:.2f}" for t in times)
            + f" s; load: {figures.describe()}; success {share:.4%}"
        )
        result.check(kills >= seconds // 2 - 1, f"only {kills} kills")
        result.check(
            share >= SUCCESS_GOAL, f"success {share:.4%} < {SUCCESS_GOAL:.1%} ({figures.failed})"
        )
        if not ctx.sabotage:  # retries are about success; recovery does not depend on them
            result.check(not slow, f"{len(slow)} recoveries over {RECOVERY_LIMIT}s: {slow}")
        result.load = f"{figures.total:,} req, {kills} pod kill -9"
        result.failed = f"{figures.failed} ({1 - share:.3%})"
        result.lost = "-"
        result.recovery = f"max {max(times):.2f}s" if times else "-"
    finally:
        await cluster.close()
