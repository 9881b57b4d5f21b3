"""Pure write semantics of the API server: what a create, replace, status update, delete or
apply turns a stored object into. No I/O here; `shoal.server.writes` reads the store, calls
these functions and writes the result.

The API server owns the system metadata (uid, creationTimestamp, generation,
deletionTimestamp); the store owns resourceVersion. Everything else in `metadata`, and the
"spec part" of an object, belongs to whoever writes the spec; `status` belongs to whoever
writes the status subresource. The spec part is every top-level field except apiVersion,
kind, metadata and status, so kinds without a `spec` block (Event) follow the same rules.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from shoal.store.base import Object

SYSTEM_METADATA = ("uid", "creationTimestamp", "generation", "deletionTimestamp")
ENVELOPE = ("apiVersion", "kind", "metadata", "status")


class ApplyAction(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"


def timestamp(now: datetime) -> str:
    """The wire form of a timestamp (what pydantic's JSON dump of a datetime gives)."""
    return now.isoformat().replace("+00:00", "Z")


def spec_part(obj: Object) -> dict[str, Any]:
    """The fields whose change bumps `generation`."""
    return {key: value for key, value in obj.items() if key not in ENVELOPE}


def _with_own_metadata(obj: Object) -> Object:
    """A shallow copy whose metadata dict may be changed. Nested values stay shared: the
    functions here replace them, never mutate them (a deep copy per write was measurable)."""
    result = dict(obj)
    result["metadata"] = dict(obj["metadata"])
    return result


def prepare_create(obj: Object, now: datetime, uid: str | None = None) -> Object:
    """A new object as the server stores it: fresh system metadata, generation 1."""
    result = _with_own_metadata(obj)
    meta = result["metadata"]
    for key in (*SYSTEM_METADATA, "resourceVersion"):
        meta.pop(key, None)
    meta["uid"] = uid or str(uuid.uuid4())
    meta["creationTimestamp"] = timestamp(now)
    meta["generation"] = 1
    return result


def next_generation(stored: Object, new_spec_part: dict[str, Any]) -> int:
    """Generation +1 only when the spec part changes (metadata/status edits keep it)."""
    generation = int(stored["metadata"].get("generation") or 1)
    return generation + 1 if spec_part(stored) != new_spec_part else generation


def merge_replace(stored: Object, incoming: Object) -> Object:
    """A PUT: spec part and user metadata from `incoming`, status and system metadata from
    `stored`. The stored resourceVersion is kept so the caller can compare-and-set on it."""
    result = _with_own_metadata(incoming)
    result.pop("status", None)
    if "status" in stored:
        result["status"] = stored["status"]
    meta = result["metadata"]
    stored_meta = stored["metadata"]
    for key in (*SYSTEM_METADATA, "resourceVersion"):
        meta.pop(key, None)
        if key in stored_meta:
            meta[key] = stored_meta[key]
    meta["generation"] = next_generation(stored, spec_part(incoming))
    return result


def merge_status(stored: Object, incoming: Object) -> Object:
    """A status PUT: only `status` comes from `incoming`."""
    result = _with_own_metadata(stored)
    if "status" in incoming:
        result["status"] = incoming["status"]
    else:
        result.pop("status", None)
    return result


def merge_apply(stored: Object, document: Object, explicit_metadata: set[str]) -> Object:
    """Server-side apply of `document` onto `stored`: the spec part, labels and annotations
    come from the document; status, system metadata and (unless the document names them)
    finalizers and ownerReferences stay, so re-applying a manifest never strips the
    agent's finalizer or a controller's ownership."""
    result = merge_replace(stored, document)
    meta = result["metadata"]
    for key in ("finalizers", "ownerReferences"):
        if key not in explicit_metadata and key in stored["metadata"]:
            meta[key] = stored["metadata"][key]
        elif key not in explicit_metadata:
            meta.pop(key, None)
    annotations = _applied_annotations(stored, document)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return result


def is_system_annotation(key: str) -> bool:
    """Annotations shoal itself writes (`deployment.shoal.dev/revision`, the rollout verbs'
    `rollout.shoal.dev/action`): in a domain ending in shoal.dev."""
    domain, slash, _ = key.partition("/")
    return bool(slash) and (domain == "shoal.dev" or domain.endswith(".shoal.dev"))


def _applied_annotations(stored: Object, document: Object) -> dict[str, Any]:
    """The document's annotations, plus the stored system annotations it does not name: a
    manifest re-applied after `shoal rollout promote` must neither drop the controller's
    bookkeeping nor count as a change (as kubectl apply keeps what others set)."""
    own = document["metadata"].get("annotations") or {}
    kept = {
        key: value
        for key, value in (stored["metadata"].get("annotations") or {}).items()
        if is_system_annotation(key) and key not in own
    }
    return {**kept, **own}


def apply_action(stored: Object | None, document: Object) -> ApplyAction:
    """`unchanged` when spec part, labels and annotations (system ones kept, see
    `merge_apply`) are identical to the stored ones."""
    if stored is None:
        return ApplyAction.CREATED
    same_spec = spec_part(stored) == spec_part(document)
    stored_meta, new_meta = stored["metadata"], document["metadata"]
    same_meta = (stored_meta.get("labels") or {}) == (new_meta.get("labels") or {}) and (
        stored_meta.get("annotations") or {}
    ) == _applied_annotations(stored, document)
    return ApplyAction.UNCHANGED if same_spec and same_meta else ApplyAction.CONFIGURED


def mark_deleted(stored: Object, now: datetime) -> Object:
    """DELETE of an object with finalizers: it stays, with a deletionTimestamp."""
    result = _with_own_metadata(stored)
    result["metadata"].setdefault("deletionTimestamp", timestamp(now))
    return result


def has_finalizers(obj: Object) -> bool:
    return bool(obj["metadata"].get("finalizers"))


def is_terminating(obj: Object) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def should_remove(obj: Object) -> bool:
    """An object marked for deletion whose last finalizer is gone disappears."""
    return is_terminating(obj) and not has_finalizers(obj)


def resource_version_of(obj: Object) -> str | None:
    value = obj.get("metadata", {}).get("resourceVersion")
    return None if value in (None, "") else str(value)
