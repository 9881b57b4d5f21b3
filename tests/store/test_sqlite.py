"""SqliteStore beyond the shared contract: durability, restarts, history in SQLite, group commit."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from store_samples import collect, pod

from shoal.api.errors import ApiError, Gone, Unavailable
from shoal.store.sqlite import SqliteStore

CHILD = Path(__file__).with_name("store_durability_child.py")


def parse_acknowledgement(line: bytes) -> tuple[str, int, int]:
    name, revision, count = line.decode().split()
    return name, int(revision), int(count)


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), str(path), "8", stdout=asyncio.subprocess.PIPE, env=env
    )
    assert child.stdout is not None
    acknowledged: list[tuple[str, int, int]] = []
    try:
        while len(acknowledged) < 600:
            line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
            assert line, "the writer child died on its own"
            acknowledged.append(parse_acknowledgement(line))
        os.kill(child.pid, signal.SIGKILL)
        # lines printed before the kill landed are acknowledged writes too
        rest = await asyncio.wait_for(child.stdout.read(), timeout=30)
        await asyncio.wait_for(child.wait(), timeout=30)
    finally:
        if child.returncode is None:
            os.kill(child.pid, signal.SIGKILL)
            await child.wait()
    assert child.returncode == -signal.SIGKILL
    acknowledged.extend(parse_acknowledgement(line) for line in rest.splitlines())

    store = SqliteStore(path)
    try:
        highest = max(revision for _, revision, _ in acknowledged)
        assert await store.revision() >= highest
        latest: dict[str, tuple[int, int]] = {}
        for name, revision, count in acknowledged:
            latest[name] = max(latest.get(name, (0, 0)), (revision, count))
        for name, (revision, count) in latest.items():
            stored = await store.get("Pod", None, name)
            # the stored state is the acknowledged one or a later (unacknowledged) one
            assert int(stored["metadata"]["resourceVersion"]) >= revision
            assert stored["spec"].get("count", 0) >= count
        again = await store.create(pod("after-restart"))
        assert int(again["metadata"]["resourceVersion"]) == await store.revision() > highest
    finally:
        await store.close()


async def test_restart_keeps_objects_and_the_revision_counter(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    for i in range(5):
        await store.create(pod(f"p{i}"))
    await store.delete("Pod", "default", "p4")  # the top revision belongs to a deletion
    await store.close()

    store = SqliteStore(path)
    try:
        assert await store.revision() == 6
        assert [o["metadata"]["name"] for o in (await store.list("Pod")).items] == [
            "p0",
            "p1",
            "p2",
            "p3",
        ]
        assert (await store.list("Pod")).revision == 6
        created = await store.create(pod("p5"))
        assert created["metadata"]["resourceVersion"] == "7"
    finally:
        await store.close()


@pytest.mark.parametrize("memory_history", [1_000, 3])
async def test_watch_resumes_after_restart(tmp_path: Path, memory_history: int) -> None:
    """From memory or, when the memory ring is shorter, from the SQLite history."""
    path = tmp_path / "store.db"
    store = SqliteStore(path, history_limit=10)
    for i in range(15):
        await store.create(pod(f"p{i}"))
    await store.close()

    store = SqliteStore(path, history_limit=10, memory_history=memory_history)
    try:
        for since in range(5, 15):
            events = await collect(store, since, 15 - since)
            assert [e.revision for e in events] == list(range(since + 1, 16))
            assert events[0].object["metadata"]["name"] == f"p{since}"
        with pytest.raises(Gone):
            await collect(store, 4, 1)
    finally:
        await store.close()


async def test_history_fallback_hands_over_to_live_events(tmp_path: Path) -> None:
    """Watchers replaying from SQLite (memory ring of 2) while writers keep writing."""
    store = SqliteStore(tmp_path / "store.db", memory_history=2)
    try:
        for i in range(20):
            await store.create(pod(f"early{i}"))
        total = 20 + 6 * 20

        async def writer(index: int) -> None:
            for i in range(20):
                await store.create(pod(f"w{index}-{i}"))

        async def watcher(since: int) -> list[int]:
            return [e.revision for e in await collect(store, since, total - since)]

        watchers = [asyncio.create_task(watcher(since)) for since in range(0, 20, 2)]
        await asyncio.gather(*(writer(i) for i in range(6)))
        for since, revisions in zip(range(0, 20, 2), await asyncio.gather(*watchers), strict=True):
            assert revisions == list(range(since + 1, total + 1))
    finally:
        await store.close()


async def test_history_in_sqlite_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path, history_limit=7)
    try:
        for i in range(30):
            await store.create(pod(f"p{i}"))
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        revisions = [row[0] for row in conn.execute("SELECT revision FROM events ORDER BY 1")]
    assert revisions == list(range(24, 31))


async def test_concurrent_writes_are_group_committed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    try:
        results = await asyncio.gather(*(store.create(pod(f"p{i}")) for i in range(300)))
        revisions = sorted(int(r["metadata"]["resourceVersion"]) for r in results)
        assert revisions == list(range(1, 301))
        stats = store.stats()
        assert stats["writes"] == 300
        assert stats["commits"] < 300  # several writes shared a transaction
    finally:
        await store.close()


async def test_a_failed_transaction_fails_its_batch_and_keeps_revisions_contiguous(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    try:
        await store.create(pod("before"))
        with sqlite3.connect(path) as conn:  # make SQLite itself refuse one write
            conn.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON objects WHEN NEW.name = 'poison'"
                " BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )
        with pytest.raises(ApiError, match="poisoned"):
            await store.create(pod("poison"))
        assert await store.revision() == 1
        after = await store.create(pod("after"))
        assert after["metadata"]["resourceVersion"] == "2"
        events = await collect(store, 0, 2)
        assert [e.object["metadata"]["name"] for e in events] == ["before", "after"]
    finally:
        await store.close()


async def test_one_process_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    try:
        with pytest.raises(RuntimeError, match="locked"):
            SqliteStore(path)
    finally:
        await store.close()
    again = SqliteStore(path)  # released on close
    await again.close()


async def test_closed_store_refuses_requests(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    await store.create(pod("a"))
    await store.close()
    with pytest.raises(Unavailable):
        await store.create(pod("b"))
    with pytest.raises(Unavailable):
        await store.get("Pod", "default", "a")
