"""Scenario 5, store durability (after etcd's robustness tests and Jepsen's register checks):
writes at ~200/s through the API while the server is killed -9 again and again.

Promises: every acknowledged write is present after each restart (creates are there with the
acknowledged revision, each writer's counter object holds at least its last acknowledged
value); revisions never go backwards (after a restart the store's revision is at least the
highest one acknowledged before the kill); and a write sent after another was acknowledged
gets a higher revision (real-time order). Writes in flight at the kill are indeterminate:
they may or may not have landed, and are counted, not judged.

Runs the bare API server (`python -m shoal.server`): no controllers write, so every revision
in the store is one of ours.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

from bench.loadgen import RawConnection, free_port, percentile

from chaos.harness import Context, Result, say, wait_healthy
from shoal.client import AsyncClient

TITLE = "store durability: 200 writes/s, server kill -9 x20"
NAMESPACE = "durable"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
WRITERS = 8
RATE = 200.0


def pod(name: str, value: int = 0) -> dict[str, object]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"value": str(value)}},
        "spec": {"command": ["sleep", "1"]},
    }


@dataclass
class Ledger:
    """What the writers were told."""

    created: dict[str, int] = field(default_factory=dict)  # name -> acknowledged revision
    counters: dict[str, int] = field(default_factory=dict)  # counter name -> last acked value
    highest: int = 0  # highest acknowledged revision
    sent: int = 0
    uncertain: int = 0  # sent, no answer (the server died)
    order_violations: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


async def writer(url: str, index: int, ledger: Ledger, stop: asyncio.Event) -> None:
    counter, value = f"counter-{index}", 0
    connection: RawConnection | None = None
    interval = WRITERS / RATE
    next_at = time.monotonic() + random.random() * interval
    sequence = 0
    while not stop.is_set():
        next_at = max(next_at + interval, time.monotonic() - interval)
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if connection is None:
            try:
                connection = await asyncio.wait_for(RawConnection.open(url), 2)
            except (OSError, TimeoutError):
                continue  # server down: try again at the next tick
        sequence += 1
        is_update = sequence % 5 == 0
        if is_update:
            path, method, body = f"{PODS}/{counter}", "PUT", pod(counter, value + 1)
        else:
            name = f"w{index}-{sequence}"
            path, method, body = PODS, "POST", pod(name)
        floor = ledger.highest
        ledger.sent += 1
        try:
            status, answer = await asyncio.wait_for(
                connection.request(method, path, json.dumps(body).encode()), 10
            )
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            ledger.uncertain += 1
            connection.close()
            connection = None
            continue
        if status not in (200, 201):
            ledger.rejected.append(f"{method} {path}: {status} {answer[:200]!r}")
            continue
        revision = int(json.loads(answer)["metadata"]["resourceVersion"])
        if revision <= floor:
            ledger.order_violations.append(f"{method} {path} got {revision} after {floor} acked")
        ledger.highest = max(ledger.highest, revision)
        if is_update:
            value += 1
            ledger.counters[counter] = value
        else:
            ledger.created[name] = revision
    if connection is not None:
        connection.close()


async def audit(url: str, ledger: Ledger, result: Result, when: str) -> int:
    """Check the store against the ledger; returns the number of lost writes. Writers go on
    meanwhile, so only what was acknowledged before the list was asked for is judged."""
    created, counters, highest = dict(ledger.created), dict(ledger.counters), ledger.highest
    async with AsyncClient(url) as client:
        answer = await client.request_json("GET", PODS)
    revision = int(answer["metadata"]["resourceVersion"])
    stored = {
        item["metadata"]["name"]: item for item in answer["items"]
    }  # fmt: skip
    lost = [name for name in created if name not in stored]
    changed = [
        name for name, rev in created.items()
        if name in stored and int(stored[name]["metadata"]["resourceVersion"]) != rev
    ]  # fmt: skip
    for name, value in counters.items():
        have = int(stored.get(name, {}).get("metadata", {}).get("annotations", {}).get("value", -1))
        if have < value:
            lost.append(f"{name} (value {have} < acknowledged {value})")
    result.check(not lost, f"{when}: acknowledged writes missing: {lost[:5]} ({len(lost)})")
    result.check(not changed, f"{when}: objects with a different revision: {changed[:5]}")
    result.check(
        revision >= highest,
        f"{when}: store revision {revision} < acknowledged {highest} (went backwards)",
    )
    return len(lost)


async def run(ctx: Context, result: Result) -> None:
    kills = 3 if ctx.short else 20
    port, data_dir = free_port(), ctx.dir / "data"
    url = f"http://127.0.0.1:{port}"
    server = ctx.bare_api(data_dir, port)
    wait_healthy(url, server)
    async with AsyncClient(url) as client:
        for index in range(WRITERS):
            await client.request_json("POST", PODS, json=pod(f"counter-{index}"))
    ledger = Ledger()
    stop = asyncio.Event()
    writers = [asyncio.create_task(writer(url, i, ledger, stop)) for i in range(WRITERS)]
    restarts: list[float] = []
    lost = 0
    started = time.monotonic()
    for kill in range(kills):
        await asyncio.sleep(random.uniform(0.8, 1.6))
        highest_before = ledger.highest
        server.kill9()
        down = time.monotonic()
        server = ctx.bare_api(data_dir, port)
        await asyncio.to_thread(wait_healthy, url, server)
        restarts.append(time.monotonic() - down)
        lost += await audit(url, ledger, result, f"after kill {kill + 1}")
        result.check(ledger.highest >= highest_before, "acknowledged revision went backwards")
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*writers)
    elapsed = time.monotonic() - started
    lost += await audit(url, ledger, result, "at the end")
    acked = len(ledger.created) + sum(ledger.counters.values())
    result.check(not ledger.order_violations, f"real-time order: {ledger.order_violations[:3]}")
    result.check(not ledger.rejected, f"writes rejected: {ledger.rejected[:3]}")
    result.check(acked > kills * 100, f"too few writes to judge: {acked}")
    say(
        f"{ledger.sent} writes sent in {elapsed:.0f}s ({ledger.sent / elapsed:.0f}/s), "
        f"{acked} acknowledged, {ledger.uncertain} in flight at a kill (indeterminate); "
        f"{kills} kill -9; restart to healthy p50 {percentile(restarts, 0.5):.2f}s, "
        f"max {max(restarts):.2f}s; highest revision {ledger.highest}; lost {lost}"
    )
    result.load = f"{ledger.sent:,} writes, {kills} kill -9"
    result.failed = f"{ledger.uncertain} in flight"
    result.lost = str(lost)
    result.recovery = f"restart max {max(restarts):.1f}s"
