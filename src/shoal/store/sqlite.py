"""The default `Store`: one embedded SQLite file, durable, with a resumable watch history.

Created by the server (`shoal server --data-dir`) and handed to the API layer; nothing else
talks to the database file. Python's `sqlite3` (the standard library) is used directly: the
access pattern (one writer thread, a few reader threads) is simple enough that a wrapper such
as aiosqlite would add a dependency without removing any code.

Layout: `objects` (current state, JSON per object), `events` (the last `history_limit`
changes, one row per revision, so a watch can resume after a restart), `meta` (the global
revision and the highest compacted revision). Revisions are contiguous: every committed write
is exactly one revision, and the counter is stored in the same transaction as the write, so it
never goes backwards, also across restarts.

Durability: WAL journal with `synchronous=FULL` by default. What we must guarantee is that an
acknowledged write survives kill -9 of the process. WAL with synchronous=NORMAL already does:
COMMIT returns after the WAL frames were written to the OS, which keeps them when the process
dies. NORMAL only skips the fsync, so on power loss or a kernel crash the last commits before
the crash could be lost (the file stays consistent). FULL fsyncs the WAL at each commit and so
also survives power loss. Because writes are group-committed (one fsync per batch, see
`shoal.store._sqlite_writer`), FULL costs little throughput under concurrency, so we take the
stronger guarantee. Measured on a 2-core VM with ~3 ms fsync: one sequential writer gets ~450
writes/s with FULL against ~3,500 with NORMAL, but 16 concurrent writers get ~2,400 and 128
get ~4,300 (batches of ~120), well above what the HTTP layer can feed. `synchronous="NORMAL"`
is accepted for machines with slow fsync and write-heavy single clients.

Reads (get, list, history for old watches) run on a small thread pool with their own
read-only connections, never on the writer thread: WAL readers see the last committed state
without waiting for the writer. Watches are served from memory (`shoal.store._watch`), with
recent changes kept in a ring (`memory_history`), older ones read back from the `events`
table. A watcher that falls more than `watch_queue_limit` changes behind is cut off with
`Gone` (it re-lists), so it never slows writers or other watchers.

One process at a time: an advisory lock on `<path>.lock` refuses a second opener, because the
revision counter lives in the writer's memory between commits.

A caller cancelled while its write is queued does not cancel the write: it may still commit.
The store is bound to the event loop that first writes to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from shoal.api.errors import Gone, Unavailable
from shoal.api.selectors import LabelSelector
from shoal.store._records import (
    Change,
    Key,
    Write,
    create_write,
    delete_write,
    found,
    make_key,
    select,
    update_write,
)
from shoal.store._sqlite_writer import (
    SCHEMA,
    SCHEMA_VERSION,
    GroupCommitWriter,
    Outcome,
    connect,
    read_meta,
)
from shoal.store._watch import WatchHub
from shoal.store.base import EventType, ListResult, Object, WatchEvent

T = TypeVar("T")
_Changes = list[Change]  # an alias: inside SqliteStore, `list` names the method


class SqliteStore:
    """`Store` in one SQLite file. Opening (the constructor) is synchronous and quick."""

    def __init__(
        self,
        path: str | Path,
        history_limit: int = 10_000,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        memory_history: int = 1_000,
        watch_queue_limit: int = 2_000,
        readers: int = 2,
        max_batch: int = 1_000,
    ) -> None:
        self.path = str(path)
        self._synchronous = synchronous
        if history_limit < 0 or memory_history < 0 or watch_queue_limit < 1:
            raise ValueError("history sizes must be >= 0 and watch_queue_limit >= 1")
        self._lock_file = _LockFile(self.path + ".lock")
        writer_conn: sqlite3.Connection | None = None
        try:
            writer_conn = self._open_writer_connection()
            meta = read_meta(writer_conn)
            recent = _recent_changes(writer_conn, min(memory_history, history_limit))
        except BaseException:
            if writer_conn is not None:
                writer_conn.close()
            self._lock_file.close()
            raise
        self._hub = WatchHub(
            meta["revision"],
            min(memory_history, history_limit),
            watch_queue_limit,
            recent,
            self._read_history,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._reader_local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_conns_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="shoal-store-read")
        self._writer = GroupCommitWriter(writer_conn, history_limit, max_batch, self._deliver)

    # -- writes ---------------------------------------------------------------------------

    async def create(self, obj: Object) -> Object:
        return await self._submit(create_write(obj))

    async def update(self, obj: Object, expected_revision: int | None = None) -> Object:
        return await self._submit(update_write(obj, expected_revision))

    async def delete(
        self, kind: str, namespace: str | None, name: str, expected_revision: int | None = None
    ) -> Object:
        return await self._submit(delete_write(kind, namespace, name, expected_revision))

    async def _submit(self, write: Write) -> Object:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("SqliteStore is bound to the event loop that first wrote to it")
        if self._closed:
            raise Unavailable("the store is closed")
        future: asyncio.Future[Change] = loop.create_future()
        self._writer.submit(write, future)
        change = await future
        return change.to_object()

    def _deliver(self, changes: list[Change], outcomes: list[Outcome]) -> None:
        """Writer thread: a batch is committed (or failed); continue on the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # The loop may close meanwhile; then nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._on_commit, changes, outcomes)

    def _on_commit(self, changes: list[Change], outcomes: list[Outcome]) -> None:
        # Publish before acknowledging: once a writer sees its result, every watcher that
        # starts afterwards finds the change in history or in its live queue.
        for change in changes:
            self._hub.publish(change)
        for future, outcome in outcomes:
            if future.done():  # the caller was cancelled; the write happened regardless
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    # -- reads ----------------------------------------------------------------------------

    async def get(self, kind: str, namespace: str | None, name: str) -> Object:
        return await self._read(_get, make_key(kind, namespace, name))

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        selector: LabelSelector | None = None,
    ) -> ListResult:
        return await self._read(_list, kind, namespace, selector)

    async def revision(self) -> int:
        return self._hub.revision

    def watch(
        self,
        since: int,
        kind: str | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        return self._hub.watch(since, kind, namespace)

    async def _read_history(
        self, since: int, until: int, kind: str | None, namespace: str | None
    ) -> _Changes:
        return await self._read(_history, since, until, kind, namespace)

    async def _read(self, function: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise Unavailable("the store is closed")
        loop = asyncio.get_running_loop()
        call = functools.partial(self._with_reader, function, *args)
        return await loop.run_in_executor(self._readers, call)

    def _with_reader(self, function: Callable[..., T], *args: object) -> T:
        """Reader thread: run `function(connection, *args)` on this thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._reader_local, "conn", None)
        if conn is None:
            conn = connect(self.path, self._synchronous, reader=True)
            self._reader_local.conn = conn
            with self._reader_conns_lock:
                self._reader_conns.append(conn)
        return function(conn, *args)

    def stats(self) -> dict[str, int]:
        """Counters for /metrics: committed transactions and writes (their ratio is the
        group-commit batch size), open watches, the published revision."""
        return {
            "commits": self._writer.commits,
            "writes": self._writer.writes,
            "watchers": self._hub.watcher_count,
            "revision": self._hub.revision,
        }

    # -- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Commit queued writes, end every watch, release the file."""
        if self._closed:
            return
        self._closed = True
        # The writer queues its last deliveries on the loop before stop() returns, so they run
        # (FIFO) before we resume: watchers get every acknowledged change before they end.
        await asyncio.to_thread(self._writer.stop)
        self._hub.close()
        await asyncio.to_thread(self._readers.shutdown)
        with self._reader_conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        self._lock_file.close()

    def _open_writer_connection(self) -> sqlite3.Connection:
        conn = connect(self.path, self._synchronous, reader=False)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"{self.path}: cannot switch SQLite to WAL mode ({mode})")
            # After a burst the WAL would keep its largest size; truncate it back after
            # checkpoints instead.
            conn.execute("PRAGMA journal_size_limit = 67108864")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                raise RuntimeError(
                    f"{self.path}: store schema version {version}, this shoal knows "
                    f"{SCHEMA_VERSION}: use a matching shoal version or a new data directory"
                )
            # One transaction: a crash while creating the schema leaves no half-made store.
            conn.executescript(
                f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
        except BaseException:
            conn.close()
            raise
        return conn


class _LockFile:
    """An flock held while the store is open; the kernel drops it if the process dies."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise RuntimeError(
                f"{path} is locked: another shoal process has this store open"
            ) from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_CHANGE_COLUMNS = "revision, type, kind, namespace, body"


def _change(row: tuple[int, EventType, str, str, bytes]) -> Change:
    """A `Change` from an `events` row selected as `_CHANGE_COLUMNS`."""
    revision, type_, kind, namespace, body = row
    return Change(type_, revision, kind, namespace, body)


def _recent_changes(conn: sqlite3.Connection, limit: int) -> list[Change]:
    rows = conn.execute(
        f"SELECT {_CHANGE_COLUMNS} FROM events ORDER BY revision DESC LIMIT ?", (limit,)
    ).fetchall()
    return [_change(row) for row in reversed(rows)]


# -- reader-thread functions (each gets the thread's connection) ---------------------------


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: the meta row and the rows read inside it are from one state."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _narrowed(
    query: str, params: tuple[object, ...], **equal: str | None
) -> tuple[str, tuple[object, ...]]:
    """`query` with `AND column = ?` for each column whose value is given (not None)."""
    for column, value in equal.items():
        if value is not None:
            query += f" AND {column} = ?"
            params += (value,)
    return query, params


def _get(conn: sqlite3.Connection, key: Key) -> Object:
    row = conn.execute(
        "SELECT revision, body FROM objects WHERE kind = ? AND namespace = ? AND name = ?", key
    ).fetchone()
    return found(key, row)


def _list(
    conn: sqlite3.Connection, kind: str, namespace: str | None, selector: LabelSelector | None
) -> ListResult:
    query, params = _narrowed(
        "SELECT revision, body FROM objects WHERE kind = ?", (kind,), namespace=namespace
    )
    with _snapshot(conn):
        revision = read_meta(conn)["revision"]
        rows = conn.execute(query + " ORDER BY namespace, name", params).fetchall()
    return ListResult(select(rows, selector), revision)


def _history(
    conn: sqlite3.Connection, since: int, until: int, kind: str | None, namespace: str | None
) -> list[Change]:
    query, params = _narrowed(
        f"SELECT {_CHANGE_COLUMNS} FROM events WHERE revision > ? AND revision <= ?",
        (since, until),
        kind=kind,
        namespace=namespace,
    )
    with _snapshot(conn):
        compacted = read_meta(conn)["compacted"]
        if since < compacted:
            raise Gone(
                f"revision {since} is compacted; the oldest revision a watch can start from "
                f"is {compacted}: re-list and watch from the list's revision"
            )
        rows = conn.execute(query + " ORDER BY revision", params).fetchall()
    return [_change(row) for row in rows]
