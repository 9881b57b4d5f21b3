"""The Store protocol: durable resources with one global revision and a watchable history.

Objects are wire-form dicts (`{"apiVersion", "kind", "metadata", "spec", "status"}`); the store
does not know the models, the API server validates before it writes. The store owns exactly
two metadata fields: `resourceVersion` (the global revision of the object's last write, as a
string) and nothing else; uid, generation and timestamps are set by the API server.

Every write gets the next global revision. `watch(since)` yields every change with a revision
greater than `since`, in revision order, exactly once; a `since` older than the kept history
raises `Gone` (the caller re-lists and watches from the list's revision).

Implementations: `shoal.store.sqlite.SqliteStore` (default, embedded, durable) and
`shoal.store.memory.MemoryStore` (in-memory fake for unit tests of pure logic).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from shoal.api.selectors import LabelSelector

Object = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. For DELETED, `object` is the last state with the deletion's revision."""

    type: EventType
    object: Object
    revision: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "object": self.object}


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[Object]
    revision: int


def object_key(obj: Object) -> tuple[str, str, str]:
    """(kind, namespace or "", name) of a wire-form object."""
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace") or "", meta["name"])


class Store(Protocol):
    """Durable, revisioned resource storage. All methods are safe to call concurrently."""

    async def create(self, obj: Object) -> Object:
        """Store a new object. Raises AlreadyExists. Returns it with resourceVersion set."""
        ...

    async def get(self, kind: str, namespace: str | None, name: str) -> Object:
        """Raises NotFound."""
        ...

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        selector: LabelSelector | None = None,
    ) -> ListResult:
        """Objects of a kind (in a namespace, or all when None), at one consistent revision."""
        ...

    async def update(self, obj: Object, expected_revision: int | None = None) -> Object:
        """Replace an existing object. When `expected_revision` is given and the stored
        object's resourceVersion differs, raise Conflict. Raises NotFound."""
        ...

    async def delete(
        self, kind: str, namespace: str | None, name: str, expected_revision: int | None = None
    ) -> Object:
        """Remove an object; returns its last state. Raises NotFound / Conflict."""
        ...

    async def revision(self) -> int:
        """The current global revision (0 for an empty store)."""
        ...

    def watch(
        self,
        since: int,
        kind: str | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Changes after revision `since`, then live ones, until the consumer stops.

        Raises Gone (on first iteration) when `since` is older than the kept history.
        """
        ...

    async def close(self) -> None: ...
