"""Toggle evaluation over HTTP, for services in any language and for browser apps.

Mounted by the server composition: `create_app(store, extra_routers=[toggles_router()])`.
Importing this module registers the FeatureToggle kind, so the generic API also serves its
CRUD and watch routes (`/api/v1/namespaces/{ns}/featuretoggles`).

  POST /api/v1/namespaces/{ns}/toggles/evaluate         {"context": {...}, "toggles": [names]?}
       -> {"kind": "ToggleEvaluation", "namespace", "resourceVersion",
           "toggles": {name: {"value", "variant", "reason", "payload"}}}
  POST /api/v1/namespaces/{ns}/toggles/{name}/evaluate  {"context": {...}}
       -> {"kind": "ToggleEvaluation", "namespace", "name", "value", "variant", "reason", "payload"}
  GET  /toggles?ns=<namespace>&<attribute>=<value>...   every toggle, context from the query
       string (all values are text); answers `Access-Control-Allow-Origin: *` so a browser app
       on another origin can read it (a simple GET needs no preflight; OPTIONS answers anyway).

Answers come from `shoal.toggles.engine.evaluate`, the function the SDK runs locally, over the
toggles in the store; `currentTime` is filled with the server's clock when a toggle needs it.
Compiled toggles are cached by resourceVersion, so a request costs one store list.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from shoal.api.featuretoggle import FeatureToggle
from shoal.api.meta import API_VERSION, DEFAULT_NAMESPACE
from shoal.server.resources import json_response
from shoal.store.base import Store
from shoal.toggles.engine import CompiledToggle, compile_resource, evaluate, with_current_time

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}
# Query parameters of GET /toggles that are not context attributes.
RESERVED_QUERY = frozenset({"ns"})


class EvaluateRequest(BaseModel):
    """Body of the evaluate endpoints: the evaluation context, optionally a toggle filter."""

    context: dict[str, Any] = Field(default_factory=dict)
    toggles: list[str] | None = None


class _CompiledCache:
    """Compiled toggles by (namespace, name), reused while the resourceVersion is unchanged."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[str | None, CompiledToggle]] = {}

    def compiled(self, namespace: str, document: dict[str, Any]) -> CompiledToggle:
        meta = document["metadata"]
        key = (namespace, meta["name"])
        version = meta.get("resourceVersion")
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            entry = (version, compile_resource(FeatureToggle.from_json(document)))
            self._entries[key] = entry
        return entry[1]

    def forget_missing(self, namespace: str, names: set[str]) -> None:
        for key in [k for k in self._entries if k[0] == namespace and k[1] not in names]:
            del self._entries[key]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _snapshot(
    store: Store, cache: _CompiledCache, namespace: str
) -> tuple[dict[str, CompiledToggle], int]:
    listed = await store.list(FeatureToggle.KIND, namespace)
    toggles = {doc["metadata"]["name"]: cache.compiled(namespace, doc) for doc in listed.items}
    cache.forget_missing(namespace, set(toggles))
    return toggles, listed.revision


def _answers(
    toggles: dict[str, CompiledToggle], context: dict[str, Any], only: list[str] | None
) -> dict[str, Any]:
    now = datetime.now(UTC)
    names = sorted(toggles) if only is None else [n for n in only if n in toggles]
    return {
        name: evaluate(toggles[name], with_current_time(toggles[name], context, now)).to_json()
        for name in names
    }


def toggles_router() -> APIRouter:
    """The evaluate endpoints; the store is the app's (`app.state.store`)."""
    router = APIRouter(tags=["toggles"])
    cache = _CompiledCache()

    async def evaluate_all(
        store: Store, namespace: str, context: dict[str, Any], only: list[str] | None
    ) -> dict[str, Any]:
        toggles, revision = await _snapshot(store, cache, namespace)
        return {
            "apiVersion": API_VERSION,
            "kind": "ToggleEvaluation",
            "namespace": namespace,
            "resourceVersion": str(revision),
            "toggles": _answers(toggles, context, only),
        }

    @router.post(
        "/api/v1/namespaces/{namespace}/toggles/evaluate",
        summary="Evaluate every toggle of a namespace for one context",
    )
    async def evaluate_namespace(
        request: Request, namespace: str, body: EvaluateRequest
    ) -> Response:
        answer = await evaluate_all(_store(request), namespace, body.context, body.toggles)
        return json_response(answer)

    @router.post(
        "/api/v1/namespaces/{namespace}/toggles/{name}/evaluate",
        summary="Evaluate one toggle for one context",
    )
    async def evaluate_one(
        request: Request, namespace: str, name: str, body: EvaluateRequest
    ) -> Response:
        document = await _store(request).get(FeatureToggle.KIND, namespace, name)
        toggle = cache.compiled(namespace, document)
        context = with_current_time(toggle, body.context, datetime.now(UTC))
        answer = {
            "apiVersion": API_VERSION,
            "kind": "ToggleEvaluation",
            "namespace": namespace,
            "name": name,
            **evaluate(toggle, context).to_json(),
        }
        return json_response(answer)

    @router.get("/toggles", summary="Every toggle for the context in the query (browser apps)")
    async def browser_toggles(
        request: Request,
        ns: str = Query(DEFAULT_NAMESPACE, description="namespace of the toggles"),
    ) -> Response:
        context = {k: v for k, v in request.query_params.items() if k not in RESERVED_QUERY}
        answer = await evaluate_all(_store(request), ns, context, None)
        response = json_response(answer)
        response.headers.update(CORS_HEADERS)
        return response

    @router.options("/toggles", include_in_schema=False)
    async def browser_preflight() -> Response:
        return Response(status_code=204, headers=CORS_HEADERS)

    return router


__all__ = ["EvaluateRequest", "toggles_router"]


async def _serve_main(host: str, port: int, data_dir: str | None) -> None:
    import asyncio  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from shoal.server.serve import serve_api  # noqa: PLC0415

    store: Store
    if data_dir:
        from shoal.store.sqlite import SqliteStore  # noqa: PLC0415

        os.makedirs(data_dir, exist_ok=True)
        store = SqliteStore(os.path.join(data_dir, "shoal.db"))
    else:
        from shoal.store.memory import MemoryStore  # noqa: PLC0415

        store = MemoryStore()
    task = asyncio.ensure_future(serve_api(store, host, port, extra_routers=[toggles_router()]))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await store.close()


if __name__ == "__main__":
    # A bare API server with the toggle routes (tests/e2e and bench/ start it), for as long as
    # no composed `shoal server` is needed: `python -m shoal.server.toggles_routes --port N`.
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7070)
    parser.add_argument("--data-dir", default=None, help="SQLite data dir (default: in memory)")
    arguments = parser.parse_args()
    asyncio.run(_serve_main(arguments.host, arguments.port, arguments.data_dir))
