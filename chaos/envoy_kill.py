"""Scenario 9, Envoy killed -9 under load: the agent's supervisor must start a new Envoy that
serves the last confirmed config (the same endpoints) within 2 s of the kill.

Figures per kill: time until a request through the Service port succeeds again, time until
the new Envoy lists the same endpoints, requests that failed meanwhile (a dead proxy refuses
connections: those failures are counted, not forbidden), and none may fail after recovery.
"""

from __future__ import annotations

import asyncio
import time

from bench.loadgen import HttpLoad, RawConnection, free_port

from chaos.harness import Cluster, Context, Result, deployment, envoy_hosts, say, service, wait_for

TITLE = "Envoy kill -9 under load"
RECOVERY_LIMIT = 2.0
CLUSTER = "default.web.all"


async def serves(port: int) -> bool:
    connection = await asyncio.wait_for(RawConnection.open(f"http://127.0.0.1:{port}"), 0.5)
    try:
        status, _ = await asyncio.wait_for(connection.request("GET", "/"), 0.5)
        return status == 200
    finally:
        connection.close()


async def run(ctx: Context, result: Result) -> None:
    kills = 1 if ctx.short else 3
    cluster = Cluster(ctx)
    try:
        await cluster.start()
        port = free_port()
        await cluster.apply(deployment("web", 3), service("web", port))
        await cluster.wait_rollout("web", "", 3, 60)
        admin = cluster.admin_port()
        hosts = await envoy_hosts(admin, CLUSTER)
        result.check(len(hosts) == 3, f"Envoy lists {sorted(hosts)} before the kill, not 3 hosts")
        load = HttpLoad(port, connections=8, rate=400)
        load.start()
        await asyncio.sleep(2)
        recoveries: list[float] = []
        for kill in range(kills):
            envoy = cluster.envoy()
            if not result.check(envoy is not None, "no Envoy process found"):
                break
            assert envoy is not None
            before_failed = load.figures.failed
            killed_at = time.monotonic()
            envoy.kill()
            serving = await wait_for(lambda: serves(port), 10, interval=0.02)
            same = await wait_for(lambda: _same(admin, hosts), 10, 0.02)
            if same is not None:
                same = time.monotonic() - killed_at  # both figures count from the kill
            new = cluster.envoy()
            recovered = serving
            settle = time.monotonic()
            await asyncio.sleep(2)
            failed_during = load.figures.failed - before_failed
            failed_after = load.figures.failed_between(settle + 0.2, time.monotonic())
            say(
                f"kill {kill + 1}: Envoy pid {envoy.pid} -> "
                f"{new.pid if new else 'none'}; serving again after "
                f"{serving if serving is None else f'{serving:.2f}s'}, same endpoints after "
                f"{same if same is None else f'{same:.2f}s'}; {failed_during} requests failed"
            )
            result.check(new is not None and new.pid != envoy.pid, "no new Envoy process")
            result.check(
                serving is not None and serving <= RECOVERY_LIMIT,
                f"kill {kill + 1}: serving again after {serving}s (limit {RECOVERY_LIMIT}s)",
            )
            result.check(same is not None, f"kill {kill + 1}: the new Envoy lacks {sorted(hosts)}")
            result.check(
                failed_after == 0, f"kill {kill + 1}: {failed_after} failed after recovery"
            )
            if recovered is not None:
                recoveries.append(recovered)
        figures = await load.stop()
        say(f"load: {figures.describe()}; Envoy restarts seen: {len(recoveries)} of {kills}")
        result.load = f"{figures.total:,} req, {kills} Envoy kill -9"
        result.failed = str(figures.failed)
        result.lost = "0 endpoints" if not result.problems else "see above"
        result.recovery = f"max {max(recoveries):.2f}s" if recoveries else "never"
    finally:
        await cluster.close()


async def _same(admin: int, hosts: set[str]) -> bool:
    return await envoy_hosts(admin, CLUSTER) == hosts
