"""SQLite schema and the group-commit writer thread behind `SqliteStore`.

Only `shoal.store.sqlite` uses this module. One thread owns the only writing connection. It
takes whatever writes are queued (up to `max_batch`), applies them in order inside one
transaction (`BEGIN IMMEDIATE` ... `COMMIT`), and only after the commit has returned hands the
outcomes back through `deliver` (which the store forwards to its event loop). One commit (one
fsync with synchronous=FULL) thus acknowledges a whole batch; while it is being written, the
next batch queues up, so batches grow with load and no artificial delay is needed.

A write refused by the rules (AlreadyExists, NotFound, Conflict) changes nothing and only
fails its own caller. An SQLite error (disk full, I/O error) rolls the whole batch back, fails
every caller in it, and restores the revision counter, so revisions stay contiguous.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.api.errors import ApiError
from shoal.store._records import Change, Key, Write, apply_write

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0), ('compacted', 0);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    body BLOB NOT NULL
);
"""

Outcome = tuple[Any, Change | BaseException]
"""(the caller's token, its committed change or the error to raise)."""

Deliver = Callable[[list[Change], list[Outcome]], None]


def connect(path: str, synchronous: str, *, reader: bool) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves; check_same_thread=False because
    # the store closes reader connections from the thread that closes the store.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if reader:
        conn.execute("PRAGMA query_only = ON")
    return conn


def read_meta(conn: sqlite3.Connection) -> dict[str, int]:
    return {key: int(value) for key, value in conn.execute("SELECT key, value FROM meta")}


class _SqlTable:
    """The `Table` of `shoal.store._records` over the writer's open transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def read(self, key: Key) -> tuple[int, bytes] | None:
        row = self._conn.execute(
            "SELECT revision, body FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
            key,
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def write(self, key: Key, revision: int, body: bytes) -> None:
        self._conn.execute(
            "INSERT INTO objects (kind, namespace, name, revision, body) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, namespace, name)"
            " DO UPDATE SET revision = excluded.revision, body = excluded.body",
            (*key, revision, body),
        )

    def remove(self, key: Key) -> None:
        self._conn.execute("DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?", key)


@dataclass(slots=True)
class _Request:
    write: Write
    token: Any


class GroupCommitWriter:
    """The single writer thread. `submit` is thread-safe and never blocks."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        history_limit: int,
        max_batch: int,
        deliver: Deliver,
    ) -> None:
        meta = read_meta(conn)
        self._conn = conn
        self._table = _SqlTable(conn)
        self._revision = meta["revision"]
        self._compacted = meta["compacted"]
        self._history_limit = history_limit
        self._max_batch = max_batch
        self._deliver = deliver
        self.commits = 0  # transactions committed; with `writes`, shows how well batching works
        self.writes = 0
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="shoal-store-writer", daemon=True)
        self._thread.start()

    def submit(self, write: Write, token: Any) -> None:
        self._requests.put(_Request(write, token))

    def stop(self) -> None:
        """Commit what is queued, then stop and close the connection. Blocks: call from a
        thread, not from the event loop."""
        self._requests.put(None)
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._requests.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._requests.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._deliver(*self._commit(batch))

    def _commit(self, batch: list[_Request]) -> tuple[list[Change], list[Outcome]]:
        start, start_compacted = self._revision, self._compacted
        changes: list[Change] = []
        outcomes: list[Outcome] = []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for request in batch:
                try:
                    change = apply_write(request.write, self._table, self._revision + 1)
                except ApiError as refused:
                    outcomes.append((request.token, refused))
                    continue
                self._revision = change.revision
                self._conn.execute(
                    "INSERT INTO events (revision, type, kind, namespace, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (change.revision, change.type, change.kind, change.namespace, change.body),
                )
                changes.append(change)
                outcomes.append((request.token, change))
            if changes:
                self._record_revision()
            self._conn.execute("COMMIT")
        except Exception as error:  # SQLite trouble: nothing of this batch happened
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            self._revision, self._compacted = start, start_compacted
            failure = ApiError(f"store write failed, nothing was written: {error}")
            failure.__cause__ = error
            return [], [(request.token, failure) for request in batch]
        self.commits += 1
        self.writes += len(changes)
        return changes, outcomes

    def _record_revision(self) -> None:
        self._conn.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (self._revision,))
        compacted = max(0, self._revision - self._history_limit)
        if compacted > self._compacted:
            self._conn.execute("DELETE FROM events WHERE revision <= ?", (compacted,))
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'compacted'", (compacted,))
            self._compacted = compacted
