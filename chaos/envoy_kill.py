"""Scenario 9, Envoy killed -9 under load: the agent's supervisor must start a new Envoy that
serves the last confirmed config (the same endpoints) within 2 s of the kill.

Figures per kill: time until a request through the Service port succeeds again, time until
the new Envoy lists the same endpoints, requests that failed meanwhile (a dead proxy refuses
connections: those failures are counted, not forbidden), and none may fail after recovery.
Shoal must publish every restart itself: Node.status.envoyRestarts counts them and each is an
EnvoyRestarted Event on the Node (how Envoy ended, when its config was confirmed again).
"""

from __future__ import annotations

import asyncio
import re
import time

from bench.loadgen import HttpLoad, RawConnection, free_port

from chaos.harness import (
    Cluster,
    Context,
    Result,
    deployment,
    envoy_hosts,
    list_items,
    say,
    service,
    wait_for,
)

TITLE = "Envoy kill -9 under load"
RECOVERY_LIMIT = 2.0
CLUSTER = "default.web.all"
NODE = "chaos"  # the harness's --node-name
CONFIRMED = re.compile(r"config confirmed (\d+\.\d+)s")


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
        published = await _published(cluster, kills)
        counted = (await cluster.client.request_json("GET", f"/api/v1/nodes/{NODE}"))["status"]
        for message in published:
            say(f"EnvoyRestarted: {message}")
        confirmed = [float(m) for text in published for m in CONFIRMED.findall(text)]
        say(
            f"shoal published {len(published)} EnvoyRestarted events, Node.status.envoyRestarts "
            f"= {counted.get('envoyRestarts')}; config confirmed after "
            f"{', '.join(f'{c:.2f}s' for c in confirmed) or 'never'}"
        )
        result.check(
            len(published) == kills and counted.get("envoyRestarts") == kills,
            f"{kills} kills, but {len(published)} EnvoyRestarted events and "
            f"envoyRestarts={counted.get('envoyRestarts')}",
        )
        result.load = f"{figures.total:,} req, {kills} Envoy kill -9"
        result.failed = str(figures.failed)
        result.lost = "0 endpoints" if not result.problems else "see above"
        result.recovery = f"max {max(recoveries):.2f}s" if recoveries else "never"
        if confirmed:
            result.recovery += f", confirmed {max(confirmed):.2f}s"
        result.recovery += f", {len(published)} published"
    finally:
        await cluster.close()


async def _published(cluster: Cluster, kills: int) -> list[str]:
    """The messages of the EnvoyRestarted Events on the Node, once there are `kills` of them
    (or whatever there is after 10 s)."""
    found: list[str] = []

    async def all_there() -> bool:
        events = await list_items(cluster.client, "events")
        found[:] = [
            e["message"]
            for e in events
            if e.get("reason") == "EnvoyRestarted" and e["involvedObject"]["name"] == NODE
        ]
        return len(found) >= kills

    await wait_for(all_there, 10, interval=0.2)
    return found


async def _same(admin: int, hosts: set[str]) -> bool:
    return await envoy_hosts(admin, CLUSTER) == hosts
