"""Store-facing write operations of the API server: read, merge (pure, `semantics`), write,
and retry when another writer got there first.

Called by the resource and apply routes with already-validated wire-form objects. A client
that sends metadata.resourceVersion gets compare-and-set (stale: 409 Conflict); one that does
not gets last-write-wins, which the server implements by retrying its own read-merge-write
against the revision it read, so a concurrent status update is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shoal.api.errors import AlreadyExists, Conflict, NotFound
from shoal.api.meta import now_utc
from shoal.server import semantics
from shoal.server.semantics import ApplyAction
from shoal.server.validation import parse_resource_version
from shoal.store.base import Object, Store

RETRIES = 20


def _key(obj: Object) -> tuple[str, str | None, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace"), meta["name"]


async def create(store: Store, obj: Object) -> Object:
    return await store.create(semantics.prepare_create(obj, now_utc()))


async def _write_merged(
    store: Store, incoming: Object, merge: Callable[[Object, Object], Object]
) -> Object:
    """Read, merge, write with CAS; retry on conflict unless the client asked for CAS."""
    expected = parse_resource_version(semantics.resource_version_of(incoming))
    for _attempt in range(RETRIES):
        stored = await store.get(*_key(incoming))
        stored_revision = int(semantics.resource_version_of(stored) or 0)
        if expected is not None and expected != stored_revision:
            raise Conflict(_stale_message(incoming, expected, stored_revision))
        merged = merge(stored, incoming)
        try:
            if semantics.should_remove(merged):
                return await store.delete(*_key(merged), expected_revision=stored_revision)
            return await store.update(merged, expected_revision=stored_revision)
        except Conflict:
            if expected is not None:
                raise
    raise Conflict(f"{incoming['kind']} {incoming['metadata']['name']!r} keeps changing; retry")


def _stale_message(obj: Object, expected: int, stored: int) -> str:
    return (
        f"{obj['kind']} {obj['metadata']['name']!r} was modified (resourceVersion {stored}, "
        f"you sent {expected}); read it again and retry"
    )


async def replace(store: Store, incoming: Object) -> Object:
    """PUT: spec and user metadata; status kept. Removing the last finalizer of an object
    being deleted deletes it (the answer is its last state)."""
    return await _write_merged(store, incoming, semantics.merge_replace)


async def replace_status(store: Store, incoming: Object) -> Object:
    """PUT .../status: only the status changes."""
    return await _write_merged(store, incoming, semantics.merge_status)


async def delete(
    store: Store, kind: str, namespace: str | None, name: str, *, force: bool = False
) -> Object:
    """DELETE: objects with finalizers get a deletionTimestamp and stay until the last
    finalizer is removed; `force` removes them at once."""
    for _attempt in range(RETRIES):
        stored = await store.get(kind, namespace, name)
        revision = int(semantics.resource_version_of(stored) or 0)
        try:
            if force or not semantics.has_finalizers(stored):
                return await store.delete(kind, namespace, name, expected_revision=revision)
            if semantics.is_terminating(stored):
                return stored
            return await store.update(
                semantics.mark_deleted(stored, now_utc()), expected_revision=revision
            )
        except Conflict:
            continue
    raise Conflict(f"{kind} {name!r} keeps changing; retry the delete")


@dataclass(frozen=True, slots=True)
class Applied:
    action: ApplyAction
    object: Object


async def apply(
    store: Store, document: Object, explicit_metadata: set[str], *, dry_run: bool = False
) -> Applied:
    """Create or update by name, keeping status and system metadata; retry on conflict."""
    for _attempt in range(RETRIES):
        try:
            stored: Object | None = await store.get(*_key(document))
        except NotFound:
            stored = None
        action = semantics.apply_action(stored, document)
        try:
            if stored is None:
                prepared = semantics.prepare_create(document, now_utc())
                return Applied(action, prepared if dry_run else await store.create(prepared))
            if action is ApplyAction.UNCHANGED or dry_run:
                merged = (
                    stored
                    if action is ApplyAction.UNCHANGED
                    else semantics.merge_apply(stored, document, explicit_metadata)
                )
                return Applied(action, merged)
            revision = int(semantics.resource_version_of(stored) or 0)
            merged = semantics.merge_apply(stored, document, explicit_metadata)
            return Applied(action, await store.update(merged, expected_revision=revision))
        except (Conflict, NotFound, AlreadyExists):
            continue  # someone wrote, deleted or created it between our read and write
    raise Conflict(f"{document['kind']} {document['metadata']['name']!r} keeps changing; retry")
