"""The write semantics both stores share: what create / update / delete do to one table.

`MemoryStore` and `SqliteStore` differ only in where rows live (a dict, or SQLite tables
inside one transaction) and in how writes are serialized (the event loop, or the group-commit
writer thread). The rules (AlreadyExists, NotFound, compare-and-set Conflict, stamping
`metadata.resourceVersion`, what a DELETED event carries) live here once, as functions over a
tiny `Table` protocol, so the two cannot drift apart.

Objects are kept as JSON bytes (orjson, already the server's encoder): bytes are an immutable
snapshot (nobody can mutate what the store holds), they are what SQLite stores anyway, and
`orjson.loads` is by far the cheapest deep copy Python has (about ten times faster than
`copy.deepcopy`), which matters because every reader and every watcher gets its own copy.
Each write is serialized exactly once, by its caller; the resourceVersion is not in the bytes
but added when an object is handed out (`materialize`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import orjson

from shoal.api.errors import AlreadyExists, Conflict, Invalid, NotFound
from shoal.api.selectors import LabelSelector
from shoal.store.base import EventType, Object, WatchEvent

Key = tuple[str, str, str]
"""(kind, namespace or "", name)."""

Action = Literal["create", "update", "delete"]

_EVENT_TYPES: dict[Action, EventType] = {
    "create": "ADDED",
    "update": "MODIFIED",
    "delete": "DELETED",
}


@dataclass(frozen=True, slots=True)
class Change:
    """One committed write as the history keeps it: the event, its filter fields, JSON body."""

    type: EventType
    revision: int
    kind: str
    namespace: str
    body: bytes

    def to_object(self) -> Object:
        """A fresh copy of the object, with resourceVersion set to this change's revision."""
        return materialize(self.body, self.revision)

    def to_event(self) -> WatchEvent:
        """A fresh event whose object the receiver may mutate."""
        return WatchEvent(self.type, self.to_object(), self.revision)

    def matches(self, kind: str | None, namespace: str | None) -> bool:
        return (kind is None or kind == self.kind) and (
            namespace is None or namespace == self.namespace
        )


class Table(Protocol):
    """Current objects by key, with the revision of their last write."""

    def read(self, key: Key) -> tuple[int, bytes] | None: ...

    def write(self, key: Key, revision: int, body: bytes) -> None: ...

    def remove(self, key: Key) -> None: ...


@dataclass(frozen=True, slots=True)
class Write:
    """A write request; `body` is the new object's JSON (None for delete)."""

    action: Action
    key: Key
    body: bytes | None = None
    expected_revision: int | None = None


def make_key(kind: str, namespace: str | None, name: str) -> Key:
    return (kind, namespace or "", name)


def describe(key: Key) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def materialize(body: bytes, revision: int) -> Object:
    """Bodies are stored without resourceVersion (it is the row's revision), so a deletion
    can reuse the last body as is and the writer never parses or re-serializes JSON."""
    obj: Object = orjson.loads(body)
    obj["metadata"]["resourceVersion"] = str(revision)
    return obj


def serialize(obj: Object) -> tuple[Key, bytes]:
    """Snapshot a caller's object as JSON (later mutations by the caller cannot reach the
    store) and check the little the store itself relies on. Runs before the write is queued."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        raise Invalid("object needs a metadata mapping")
    kind, name, namespace = obj.get("kind"), metadata.get("name"), metadata.get("namespace")
    if not isinstance(kind, str) or not kind or not isinstance(name, str) or not name:
        raise Invalid("object needs kind and metadata.name")
    if namespace is not None and not isinstance(namespace, str):
        raise Invalid("metadata.namespace must be a string")
    stored_metadata = {k: v for k, v in metadata.items() if k != "resourceVersion"}
    try:
        body = orjson.dumps({**obj, "metadata": stored_metadata})
    except orjson.JSONEncodeError as error:
        raise Invalid(f"object is not JSON-serializable: {error}") from error
    return (kind, namespace or "", name), body


def create_write(obj: Object) -> Write:
    key, body = serialize(obj)
    return Write("create", key, body)


def update_write(obj: Object, expected_revision: int | None) -> Write:
    key, body = serialize(obj)
    return Write("update", key, body, expected_revision)


def delete_write(
    kind: str, namespace: str | None, name: str, expected_revision: int | None
) -> Write:
    return Write("delete", make_key(kind, namespace, name), None, expected_revision)


def apply_write(write: Write, table: Table, revision: int) -> Change:
    """Apply one write as revision `revision`, or raise without touching the table.

    The change's body is the stored object for create/update and the last state for delete
    (so the DELETED event and delete's answer carry it, at the deletion's revision).
    """
    current = table.read(write.key)
    if write.action == "create":
        if current is not None:
            raise AlreadyExists(f"{describe(write.key)} already exists")
    elif current is None:
        raise NotFound(f"{describe(write.key)} not found")
    elif write.expected_revision is not None and write.expected_revision != current[0]:
        raise Conflict(
            f"{describe(write.key)} was modified (resourceVersion {current[0]}, "
            f"expected {write.expected_revision}): re-read it and retry"
        )

    if write.body is None:
        assert current is not None  # a delete of an existing object; tells the type checker
        body = current[1]
        table.remove(write.key)
    else:
        body = write.body
        table.write(write.key, revision, body)
    kind, namespace, _ = write.key
    return Change(_EVENT_TYPES[write.action], revision, kind, namespace, body)


# -- reads: what get and list make of the rows either store found ------------------------


def found(key: Key, row: tuple[int, bytes] | None) -> Object:
    """The object of a (revision, body) row read by key, or NotFound when there was none."""
    if row is None:
        raise NotFound(f"{describe(key)} not found")
    return materialize(row[1], row[0])


def select(rows: Iterable[tuple[int, bytes]], selector: LabelSelector | None) -> list[Object]:
    """The objects of (revision, body) rows, in their order, whose labels match `selector`."""
    objects = (materialize(body, revision) for revision, body in rows)
    return [obj for obj in objects if selector is None or selector.matches(_labels(obj))]


def _labels(obj: Object) -> Mapping[str, str]:
    return obj["metadata"].get("labels") or {}
