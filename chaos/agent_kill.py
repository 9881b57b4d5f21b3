"""Scenario 2, the node agent killed -9 and restarted (separate `shoal agent` process).

Promises: while the agent is away its pods and Envoy keep serving (the load sees no failure);
the restarted agent re-adopts them: same pids and process start times, no restart counted,
the same Envoy; and status is correct within 5 s of the restart. To make "correct" mean
something, the Deployment is scaled from 3 to 4 while the agent is away: the new agent must
start exactly that one pod (no duplicate of the others) and report all 4 Ready.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from bench.loadgen import HttpLoad, free_port

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

TITLE = "agent kill -9 and restart"
STATUS_LIMIT = 5.0


def identity(pod: dict[str, Any]) -> tuple[Any, Any, Any]:
    status = pod.get("status") or {}
    return status.get("pid"), status.get("processStartTime"), status.get("restartCount", 0)


async def run(ctx: Context, result: Result) -> None:
    rounds = 1 if ctx.short else 3
    cluster = Cluster(ctx, separate_agent=True)
    try:
        await cluster.start()
        port = free_port()
        await cluster.apply(deployment("web", 3), service("web", port))
        await cluster.wait_rollout("web", "", 3, 60)
        load = HttpLoad(port, connections=8, rate=400)
        load.start()
        await asyncio.sleep(1)
        replicas = 3
        recoveries: list[float] = []
        for round_ in range(rounds):
            pods = await list_items(cluster.client, "pods", "app=web")
            before = {p["metadata"]["uid"]: identity(p) for p in pods}
            envoy = cluster.envoy()
            assert cluster.agent is not None
            cluster.agent.kill9()
            failed_before = load.figures.failed
            replicas += 1
            doc = deployment("web", replicas)
            await cluster.apply(doc)  # the controllers create the pod; no agent runs it yet
            await asyncio.sleep(2)
            alive = [p for p in pod_processes({cluster.url}) if p.is_running()]
            result.check(
                len(alive) == replicas - 1,
                f"round {round_ + 1}: {len(alive)} pod processes while the agent is away, "
                f"not {replicas - 1}",
            )
            restarted = time.monotonic()
            cluster.start_agent()

            async def correct(want: int = replicas, old: dict[str, Any] = before) -> bool:
                pods = await list_items(cluster.client, "pods", "app=web")
                same = all(identity(p) == old[p["metadata"]["uid"]] for p in pods
                           if p["metadata"]["uid"] in old)  # fmt: skip
                return len(pods) == want and same and all(is_ready(p) for p in pods)

            wall = datetime.now(UTC)

            async def registered(since: datetime = wall) -> bool:
                nodes = await list_items(cluster.client, "nodes")
                beats = [n["status"].get("lastHeartbeatTime") for n in nodes]
                return any(b and datetime.fromisoformat(b.replace("Z", "+00:00")) > since
                           for b in beats)  # fmt: skip

            up = await wait_for(registered, 30, interval=0.02)
            up = None if up is None else time.monotonic() - restarted
            took = await wait_for(correct, 30)
            took = None if took is None else time.monotonic() - restarted
            await asyncio.sleep(1.5)  # and it stays so: no late restarts
            pods = await list_items(cluster.client, "pods", "app=web")
            changed = [
                p["metadata"]["name"] for p in pods
                if p["metadata"]["uid"] in before and identity(p) != before[p["metadata"]["uid"]]
            ]  # fmt: skip
            processes = pod_processes({cluster.url})
            new_envoy = cluster.envoy()
            failed = load.figures.failed - failed_before
            say(
                f"round {round_ + 1}: agent registered after "
                f"{up if up is None else f'{up:.2f}s'}, status correct "
                f"{took if took is None else f'{took:.2f}s'} after the agent restart; "
                f"{len(processes)} pod processes for {replicas} pods; "
                f"changed pid/start/restarts: {changed or 'none'}; Envoy pid "
                f"{envoy.pid if envoy else None} -> {new_envoy.pid if new_envoy else None}; "
                f"{failed} requests failed"
            )
            result.check(
                took is not None and took <= STATUS_LIMIT,
                f"round {round_ + 1}: status correct after {took}s (limit {STATUS_LIMIT}s)",
            )
            result.check(not changed, f"round {round_ + 1}: pods restarted or replaced: {changed}")
            result.check(
                len(processes) == replicas, f"{len(processes)} pod processes for {replicas} pods"
            )
            result.check(
                envoy is not None and new_envoy is not None and envoy.pid == new_envoy.pid,
                "Envoy was not re-adopted",
            )
            if took is not None:
                recoveries.append(took)
        figures = await load.stop()
        say(f"load: {figures.describe()}")
        result.check(figures.failed == 0, f"{figures.failed} requests failed")
        result.load = f"{figures.total:,} req, {rounds} agent kill -9"
        result.failed = str(figures.failed)
        result.lost = "0 restarts" if not result.problems else "see above"
        result.recovery = f"max {max(recoveries):.2f}s" if recoveries else "never"
    finally:
        await cluster.close()
