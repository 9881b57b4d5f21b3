"""In-memory `Store`: the same semantics as `SqliteStore`, without durability.

Used by unit tests of pure logic elsewhere (controllers, API handlers) through the `Store`
protocol. The write rules come from `shoal.store._records` and the watch fan-out from
`shoal.store._watch`, shared with `SqliteStore`, so a test passing against this fake tests
the real semantics. Writes run synchronously on the event loop (no await between check and
commit), which makes each one atomic; history keeps the last `history_limit` changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from shoal.api.selectors import LabelSelector
from shoal.store._records import (
    Key,
    Write,
    apply_write,
    create_write,
    delete_write,
    found,
    make_key,
    select,
    update_write,
)
from shoal.store._watch import WatchHub
from shoal.store.base import ListResult, Object, WatchEvent


class _DictTable:
    def __init__(self) -> None:
        self.rows: dict[Key, tuple[int, bytes]] = {}

    def read(self, key: Key) -> tuple[int, bytes] | None:
        return self.rows.get(key)

    def write(self, key: Key, revision: int, body: bytes) -> None:
        self.rows[key] = (revision, body)

    def remove(self, key: Key) -> None:
        del self.rows[key]


class MemoryStore:
    """`Store` kept in a dict. `watch_queue_limit` bounds each watcher's backlog (see
    `shoal.store._watch`)."""

    def __init__(self, history_limit: int = 10_000, watch_queue_limit: int = 2_000) -> None:
        self._table = _DictTable()
        self._hub = WatchHub(0, history_limit, watch_queue_limit)

    async def create(self, obj: Object) -> Object:
        return self._commit(create_write(obj))

    async def get(self, kind: str, namespace: str | None, name: str) -> Object:
        key = make_key(kind, namespace, name)
        return found(key, self._table.read(key))

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        selector: LabelSelector | None = None,
    ) -> ListResult:
        rows = (
            row
            for (row_kind, row_namespace, _), row in sorted(self._table.rows.items())
            if row_kind == kind and (namespace is None or namespace == row_namespace)
        )
        return ListResult(select(rows, selector), self._hub.revision)

    async def update(self, obj: Object, expected_revision: int | None = None) -> Object:
        return self._commit(update_write(obj, expected_revision))

    async def delete(
        self, kind: str, namespace: str | None, name: str, expected_revision: int | None = None
    ) -> Object:
        return self._commit(delete_write(kind, namespace, name, expected_revision))

    async def revision(self) -> int:
        return self._hub.revision

    def watch(
        self,
        since: int,
        kind: str | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        return self._hub.watch(since, kind, namespace)

    def stats(self) -> dict[str, int]:
        """The same counters as `SqliteStore.stats` (every write is its own commit here)."""
        revision = self._hub.revision
        return {
            "commits": revision,
            "writes": revision,
            "watchers": self._hub.watcher_count,
            "revision": revision,
        }

    async def close(self) -> None:
        self._hub.close()

    def _commit(self, write: Write) -> Object:
        change = apply_write(write, self._table, self._hub.revision + 1)
        self._hub.publish(change)
        return change.to_object()
