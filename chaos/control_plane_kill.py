"""Scenario 1, the control plane killed -9 in the middle of a rolling update of 10 replicas
under load (after Kubernetes' load-balancer-connectivity-during-rollout e2e test), restarted
5 s later.

Promises: 0 failed requests, GETs and POSTs alike, before, during and after the outage (Envoy
and the pods keep serving while `shoal server` is dead); the rollout completes after the
restart; no pod is duplicated or orphaned: exactly the Deployment's replicas exist, all of the
new version and ready, and the pod processes running are exactly the pids their pods report.

Test of the test (`--sabotage`): the same with SHOAL_TEST_SKIP_DRAIN=1 in the agent's
environment (old pods are signalled without waiting for Envoy to confirm they are out of
rotation and drained) must fail requests. POSTs are in the load because Envoy does not retry a
reset POST: a retry would hide a missing drain.
"""

from __future__ import annotations

import asyncio
import time

from bench.loadgen import HttpLoad, LoadFigures, free_port

from chaos.harness import (
    Cluster,
    Context,
    Result,
    deployment,
    is_ready,
    list_items,
    pod_processes,
    say,
    service,
    wait_for,
)

TITLE = "control plane kill -9 during a rollout of 10 under load"
SABOTAGE = "no drain confirmation"
SKIP_DRAIN_VARIABLE = "SHOAL_TEST_SKIP_DRAIN"  # read by shoal.agent.runner (a test-only knob)
DOWN_SECONDS = 5.0


def version_of(pod: dict[str, object]) -> str:
    spec = pod.get("spec") or {}
    assert isinstance(spec, dict)
    return next((e["value"] for e in spec.get("env", []) if e["name"] == "VERSION"), "")


def merged(*parts: LoadFigures) -> LoadFigures:
    total = LoadFigures()
    for part in parts:
        total.ok += part.ok
        total.failed += part.failed
        total.statuses.update(part.statuses)
        total.errors.update(part.errors)
        total.failure_times += part.failure_times
        total.versions.update(part.versions)
    return total


async def run(ctx: Context, result: Result) -> None:
    replicas = 6 if ctx.short else 10
    env = {SKIP_DRAIN_VARIABLE: "1"} if ctx.sabotage else {}
    cluster = Cluster(ctx, env=env)
    try:
        await cluster.start()
        port = free_port()
        v1 = deployment("web", replicas, {"VERSION": "v1"}, max_surge=3)
        await cluster.apply(v1, service("web", port))
        await cluster.wait_rollout("web", "v1", replicas, 90)
        loads = [
            HttpLoad(port, connections=4, rate=200),
            # 50 ms POSTs: a pod signalled without a drain has some in flight, and Envoy does
            # not retry a reset POST.
            HttpLoad(port, connections=4, rate=200, method="POST", path="/slow?ms=50"),
        ]
        for load in loads:
            load.start()
        await asyncio.sleep(1)
        await cluster.apply(deployment("web", replicas, {"VERSION": "v2"}, max_surge=3))

        async def midway() -> bool:
            pods = await list_items(cluster.client, "pods", "app=web")
            return sum(1 for p in pods if version_of(p) == "v2" and is_ready(p)) >= 2

        result.check(await wait_for(midway, 60) is not None, "the rollout never got under way")
        pods = await list_items(cluster.client, "pods", "app=web")
        state = sorted(f"{version_of(p)}{'+' if is_ready(p) else '-'}" for p in pods)
        assert cluster.server is not None
        cluster.server.kill9()
        killed_at = time.monotonic()
        say(f"server killed -9 mid-rollout; pods then (version, + ready): {' '.join(state)}")
        await asyncio.sleep(DOWN_SECONDS)
        alive = len(pod_processes({cluster.url}))
        failed_while_down = sum(
            ld.figures.failed_between(killed_at, time.monotonic()) for ld in loads
        )
        await cluster.start_server()
        restarted = time.monotonic()
        try:
            await cluster.wait_rollout("web", "v2", replicas, 120)
            completed: float | None = time.monotonic() - restarted
        except RuntimeError as error:
            completed = None
            result.check(False, str(error))
        await asyncio.sleep(1.5)  # the last drained pods' processes end; late requests land
        figures = merged(*[await load.stop() for load in loads])
        pods = await list_items(cluster.client, "pods", "app=web")
        processes = pod_processes({cluster.url})
        running = {p.pid for p in processes}
        reported = {(p.get("status") or {}).get("pid") for p in pods}
        orphans = running - reported
        duplicates = len(pods) - replicas
        rsets = await list_items(cluster.client, "replicasets", "app=web")
        leftover_rs = [
            r["metadata"]["name"] for r in rsets
            if r["spec"].get("replicas") and (r.get("status") or {}).get("replicas", 0) and
            version_of(r["spec"]["template"]) != "v2"
        ]  # fmt: skip
        say(
            f"while down {DOWN_SECONDS:g}s: {alive} pod processes serving, {failed_while_down} "
            f"requests failed; rollout complete "
            f"{'never' if completed is None else f'{completed:.1f}s'} after the restart; "
            f"{len(pods)} pods for {replicas} replicas, {len(processes)} pod processes, "
            f"orphan processes {sorted(orphans) or 'none'}; load: {figures.describe()}"
        )
        result.check(figures.failed == 0, f"{figures.failed} requests failed")
        if orphans:
            say(f"pods: {[(p['metadata']['name'], p['status'].get('pid')) for p in pods]}")
            for process in processes:
                if process.pid in orphans:
                    env = process.environ()
                    started = process.create_time()
                    say(f"orphan {process.pid}: PORT={env.get('PORT')} started {started}")
        result.check(not orphans, f"orphaned pod processes: {sorted(orphans)}")
        result.check(duplicates <= 0, f"{duplicates} pods more than {replicas}")
        result.check(len(processes) == replicas, f"{len(processes)} pod processes, not {replicas}")
        result.check(not leftover_rs, f"old ReplicaSets still scaled up: {leftover_rs}")
        result.load = f"{figures.total:,} req, {replicas} replicas, 1 kill -9"
        result.failed = str(figures.failed)
        result.lost = f"{len(orphans)} orphan, {max(duplicates, 0)} dup"
        result.recovery = "never" if completed is None else f"rollout +{completed:.1f}s"
    finally:
        await cluster.close()
