"""Scenario 6, the watch contract (after etcd's robustness tests): watchers that drop their
connection at random and resume from the last revision they saw, during 5,000 writes
(creates, updates, deletes), must see every change exactly once, in revision order, with
nothing missing; some pause long enough to be served from the on-disk history rather than
the in-memory ring. Then the history is pushed past its limit: a watch from a compacted
revision must get 410 Gone, and a watch from the oldest kept revision must start exactly at
the next one (never a silent skip).

Runs the bare API server (`python -m shoal.server`), so every revision is one of ours.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from dataclasses import dataclass, field

import httpx
from bench.loadgen import RawConnection, free_port

from chaos.harness import Context, Result, say, wait_healthy

TITLE = "watch contract: reconnecting watchers, 5,000 writes, compaction"
NAMESPACE = "watched"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
HISTORY_LIMIT = 10_000  # SqliteStore's default history_limit, which `python -m shoal.server` uses


def pod(name: str, value: int = 0) -> dict[str, object]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"value": str(value)}},
        "spec": {"command": ["sleep", "1"]},
    }


@dataclass
class Watcher:
    index: int
    seen: list[tuple[int, str, str]] = field(default_factory=list)  # (revision, type, name)
    last: int = 0
    reconnects: int = 0
    long_pauses: int = 0
    errors: list[str] = field(default_factory=list)


async def write_all(
    url: str, count: int, concurrency: int, prefix: str = "w"
) -> dict[int, tuple[str, str]]:
    """`count` writes (60 % create, 30 % update, 10 % delete); revision -> (type, name)."""
    acked: dict[int, tuple[str, str]] = {}
    budget = iter(range(count))

    async def one_writer(index: int) -> None:
        live: list[str] = []
        connection = await RawConnection.open(url)
        try:
            for sequence in budget:
                roll = random.random()
                if live and roll < 0.1:
                    name = live.pop(random.randrange(len(live)))
                    kind, (status, answer) = (
                        "DELETED",
                        await connection.request("DELETE", f"{PODS}/{name}"),
                    )
                elif live and roll < 0.4:
                    name = random.choice(live)
                    body = json.dumps(pod(name, sequence)).encode()
                    kind, (status, answer) = (
                        "MODIFIED",
                        await connection.request("PUT", f"{PODS}/{name}", body),
                    )
                else:
                    name = f"{prefix}{index}-{sequence}"
                    live.append(name)
                    kind, (status, answer) = "ADDED", await connection.post(PODS, pod(name))
                if status not in (200, 201):
                    raise RuntimeError(f"{kind} {name}: {status} {answer[:200]!r}")
                acked[int(json.loads(answer)["metadata"]["resourceVersion"])] = (kind, name)
        finally:
            connection.close()

    await asyncio.gather(*(one_writer(i) for i in range(concurrency)))
    return acked


async def watch_randomly(url: str, watcher: Watcher, start: int, done: asyncio.Event) -> None:
    """Watch from `start`, drop the connection at random moments, resume from the last
    revision seen; stop once `done` is set and nothing newer is pending."""
    watcher.last = start
    while True:
        connection = await RawConnection.open(url)
        stay = random.uniform(0.02, 0.5)
        deadline = time.monotonic() + stay
        quiet_since = time.monotonic()
        try:
            lines = connection.watch_lines(f"{PODS}?watch=true&resourceVersion={watcher.last}")
            while time.monotonic() < deadline:
                try:
                    _, line = await asyncio.wait_for(
                        anext(lines), max(0.01, deadline - time.monotonic())
                    )
                except TimeoutError:
                    break
                event = json.loads(line)
                if event["type"] == "ERROR":
                    watcher.errors.append(f"ERROR line at {watcher.last}: {line[:200]!r}")
                    break
                revision = int(event["object"]["metadata"]["resourceVersion"])
                if event["type"] != "BOOKMARK":
                    name = event["object"]["metadata"]["name"]
                    watcher.seen.append((revision, event["type"], name))
                watcher.last = max(watcher.last, revision)
                quiet_since = time.monotonic()
        except (RuntimeError, OSError, asyncio.IncompleteReadError) as error:
            watcher.errors.append(f"from {watcher.last}: {error}")
        finally:
            connection.close()
        if done.is_set() and time.monotonic() - quiet_since > 0.3:
            return
        watcher.reconnects += 1
        if random.random() < 0.05:
            watcher.long_pauses += 1  # long enough to fall out of the in-memory ring
            await asyncio.sleep(random.uniform(1.5, 3.0))
        else:
            await asyncio.sleep(random.uniform(0.0, 0.2))


async def first_event(url: str, since: int) -> tuple[int, str]:
    """(HTTP status, or the code of an ERROR line; the first line or the error message) of a
    watch from `since`."""
    params = {"watch": "true", "resourceVersion": str(since)}
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        client.stream("GET", PODS, params=params) as answer,
    ):
        if answer.status_code != 200:
            body = json.loads(await answer.aread())
            return answer.status_code, str(body.get("message"))
        async for line in answer.aiter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            if event["type"] == "ERROR":
                return int(event["object"].get("code", 0)), str(event["object"].get("message"))
            return 200, line
    return 0, "the stream ended without an event"


async def oldest_watchable(url: str, newest: int) -> int:
    """The smallest revision a watch may start from (binary search over 410 answers)."""
    low, high = 1, newest  # low answers 410, high does not
    while high - low > 1:
        middle = (low + high) // 2
        status, _ = await first_event(url, middle)
        if status == 410:
            low = middle
        else:
            high = middle
    return high


def judge(watcher: Watcher, acked: dict[int, tuple[str, str]], result: Result) -> int:
    """Returns how many acknowledged changes this watcher missed."""
    revisions = [r for r, _, _ in watcher.seen]
    duplicates = len(revisions) - len(set(revisions))
    out_of_order = sum(1 for a, b in itertools.pairwise(revisions) if b <= a)
    missing = sorted(set(acked) - set(revisions))
    extra = sorted(set(revisions) - set(acked))
    wrong = [
        (r, t, n) for r, t, n in watcher.seen if r in acked and acked[r] != (t, n)
    ]  # fmt: skip
    who = f"watcher {watcher.index}"
    result.check(not duplicates, f"{who}: {duplicates} events seen twice")
    result.check(not out_of_order, f"{who}: {out_of_order} events out of order")
    result.check(not missing, f"{who}: missed revisions {missing[:10]} ({len(missing)})")
    result.check(not extra, f"{who}: revisions nobody wrote {extra[:10]}")
    result.check(not wrong, f"{who}: events that do not match the write: {wrong[:3]}")
    result.check(not watcher.errors, f"{who}: errors {watcher.errors[:3]}")
    return len(missing)


async def run(ctx: Context, result: Result) -> None:
    writes = 1_500 if ctx.short else 5_000
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ctx.bare_api(ctx.dir / "data", port)
    wait_healthy(url, server)
    watchers = [Watcher(i) for i in range(4 if ctx.short else 8)]
    # Watches start after a first write: a watch from revision 0 means "every object as
    # ADDED, then changes" (a snapshot), not the history from the beginning.
    async with httpx.AsyncClient(base_url=url) as client:
        seed = (await client.post(PODS, json=pod("seed"))).json()
    start = int(seed["metadata"]["resourceVersion"])
    done = asyncio.Event()
    tasks = [asyncio.create_task(watch_randomly(url, w, start, done)) for w in watchers]
    await asyncio.sleep(0.3)
    started = time.monotonic()
    acked = await write_all(url, writes, 4)
    elapsed = time.monotonic() - started
    done.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    missed = sum(judge(w, acked, result) for w in watchers)
    result.check(len(acked) == writes, f"{len(acked)} distinct revisions for {writes} writes")
    say(
        f"{writes} writes in {elapsed:.1f}s; {len(watchers)} watchers, "
        f"{sum(w.reconnects for w in watchers)} reconnects "
        f"({sum(w.long_pauses for w in watchers)} after long pauses), "
        f"{sum(len(w.seen) for w in watchers)} events received; missed {missed}, "
        f"duplicated/out of order: see above if any"
    )
    # Compaction: push the history past its limit, then ask for what fell out of it.
    burst_started = time.monotonic()
    await write_all(url, HISTORY_LIMIT + 200 - writes, 16, prefix="burst")
    gone, message = await first_event(url, 1)
    result.check(gone == 410, f"watch from compacted revision 1 answered {gone}: {message}")
    oldest = await oldest_watchable(url, HISTORY_LIMIT + 200)
    before, _ = await first_event(url, oldest - 1)
    result.check(before == 410, f"watch from {oldest - 1} (compacted) answered {before}")
    status, line = await first_event(url, oldest)
    first = 0
    if status == 200:
        first = int(json.loads(line)["object"]["metadata"]["resourceVersion"])
    gap_ok = result.check(
        first == oldest + 1, f"watch from {oldest} started at {first}, not {oldest + 1}"
    )
    say(
        f"compaction: {HISTORY_LIMIT + 200 - writes} more writes in "
        f"{time.monotonic() - burst_started:.1f}s; watch from 1 -> {gone}; oldest watchable "
        f"revision {oldest}: from {oldest - 1} -> {before}, from {oldest} -> first event {first}"
    )
    result.load = f"{writes:,} writes, {sum(w.reconnects for w in watchers)} reconnects"
    result.failed = f"{sum(len(w.errors) for w in watchers)} watch errors"
    duplicated = sum(len(w.seen) - len({r for r, _, _ in w.seen}) for w in watchers)
    result.lost = f"{missed} missed, {duplicated} dup"
    result.recovery = f"410 below rev {oldest}" if gap_ok else "-"
