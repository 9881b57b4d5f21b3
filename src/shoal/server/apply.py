"""POST /api/v1/apply: server-side apply of a batch of documents (`shoal apply -f`).

Every document is validated before anything is written, so one bad document in a file of
three stores nothing (422 listing every cause, paths prefixed `items[i].`). Then each is
created or updated by name in order, keeping status and system metadata, retrying on
conflict. `?dryRun=true` stops after reporting what would happen.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from shoal.api.errors import Cause, Invalid
from shoal.api.meta import Resource
from shoal.api.registry import KINDS
from shoal.server import admission, writes
from shoal.server.resources import json_response
from shoal.server.validation import parse_json, url_causes, validate_document
from shoal.store.base import Object, Store

APPLY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {"items": {"type": "array", "items": {"type": "object"}}},
                }
            }
        },
    }
}


def validate_batch(payload: Any) -> list[tuple[type[Resource], Object, set[str]]]:
    """Every document checked; raises one Invalid with all causes of all documents."""
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
        raise Invalid(
            'apply needs {"items": [...]}',
            [Cause("items", "must be a list of documents", "FieldValueRequired")],
        )
    causes: list[Cause] = []
    valid: list[tuple[type[Resource], Object, set[str]]] = []
    for index, document in enumerate(payload["items"]):
        prefix = f"items[{index}]"
        kind = document.get("kind") if isinstance(document, dict) else None
        cls = KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            known = ", ".join(sorted(KINDS))
            causes.append(
                Cause(
                    f"{prefix}.kind",
                    f"unknown kind {kind!r} (known: {known})",
                    "FieldValueNotSupported",
                )
            )
            continue
        meta = document.get("metadata")
        explicit = set(meta) if isinstance(meta, dict) else set()
        doc_causes = url_causes(cls, document, None, None, prefix)
        obj, model_causes = validate_document(cls, document, prefix)
        causes += doc_causes + model_causes
        if obj is not None and not doc_causes:
            valid.append((cls, obj, explicit))
    if causes:
        raise Invalid(f"{len(payload['items'])} document(s) checked; nothing was applied", causes)
    return valid


def add_apply_route(router: APIRouter, store: Store) -> None:

    async def apply(request: Request, dry_run: bool = Query(False, alias="dryRun")) -> Response:
        batch = validate_batch(parse_json(await request.body()))
        await admission.admit_batch(store, [obj for _cls, obj, _explicit in batch])
        results = []
        for _cls, obj, explicit in batch:
            applied = await writes.apply(store, obj, explicit, dry_run=dry_run)
            meta = applied.object["metadata"]
            results.append(
                {
                    "kind": applied.object["kind"],
                    "namespace": meta.get("namespace"),
                    "name": meta["name"],
                    "action": applied.action.value,
                    "object": applied.object,
                }
            )
        return json_response({"kind": "ApplyResult", "dryRun": dry_run, "items": results})

    router.add_api_route(
        "/api/v1/apply",
        apply,
        methods=["POST"],
        name="apply",
        tags=["apply"],
        openapi_extra=APPLY_BODY,
        summary="Create or update many documents by name (all validated first)",
    )
