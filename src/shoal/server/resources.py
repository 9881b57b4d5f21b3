"""Per-kind REST routes, generated from the kind registry when the app is built.

`resource_router(cls, store, metrics)` gives, for a namespaced kind:
  /api/v1/namespaces/{namespace}/{plural}          GET list|watch, POST create
  /api/v1/{plural}                                 GET list|watch across namespaces
  /api/v1/namespaces/{namespace}/{plural}/{name}   GET, PUT, DELETE
  .../{name}/status                                PUT (kinds with a status)
and for a cluster-scoped kind the same without the namespace part (POST on /api/v1/{plural}).
Bodies are read raw and validated here (not by FastAPI) so every failure becomes a Status
with Kubernetes field paths; the OpenAPI document still describes them (see `openapi`).
Answers are pre-encoded JSON bytes (orjson): no second validation pass on the way out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from shoal.api.errors import BadRequest
from shoal.api.meta import API_VERSION, Resource
from shoal.api.selectors import LabelSelector, parse_selector
from shoal.server import admission, writes
from shoal.server.metrics import WATCH_SCOPE_KEY, ApiMetrics
from shoal.server.validation import check_object, parse_json
from shoal.server.watch import LineCache, OpenWatches, WatchStream
from shoal.store.base import Store

Handler = Callable[[Request, str | None, str | None], Awaitable[Response]]


def json_response(payload: Any, status_code: int = 200) -> Response:
    body = orjson.dumps(payload)
    return Response(body, status_code=status_code, media_type="application/json")


def parse_label_selector(text: str | None) -> LabelSelector | None:
    if not text:
        return None
    try:
        return parse_selector(text)
    except ValueError as error:
        raise BadRequest(f"labelSelector: {error}") from error


def parse_since(text: str | None) -> int:
    if text in (None, ""):
        return 0
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"resourceVersion must be a revision number, not {text!r}") from None


def body_schema(cls: type[Resource]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{cls.KIND}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


class KindRoutes:
    """The handlers of one kind; namespace is None for cluster-scoped kinds or list-all."""

    def __init__(
        self,
        cls: type[Resource],
        store: Store,
        metrics: ApiMetrics,
        lines: LineCache,
        open_watches: OpenWatches,
    ) -> None:
        self.cls = cls
        self.store = store
        self.metrics = metrics
        self.lines = lines
        self.open_watches = open_watches

    async def list_or_watch(
        self,
        request: Request,
        namespace: str | None,
        watch: bool,
        resource_version: str | None,
        label_selector: str | None,
    ) -> Response:
        selector = parse_label_selector(label_selector)
        if watch:
            return await self.watch(request, namespace, parse_since(resource_version), selector)
        result = await self.store.list(self.cls.KIND, namespace, selector)
        return json_response(
            {
                "apiVersion": API_VERSION,
                "kind": f"{self.cls.KIND}List",
                "metadata": {"resourceVersion": str(result.revision)},
                "items": result.items,
            }
        )

    async def watch(
        self,
        request: Request,
        namespace: str | None,
        since: int,
        selector: LabelSelector | None,
    ) -> Response:
        request.scope[WATCH_SCOPE_KEY] = True
        stream = WatchStream(self.store, self.cls.KIND, namespace, since, selector, self.lines)
        await stream.start()
        kind = self.cls.KIND
        gauge = self.metrics.watches.labels(kind)
        self.metrics.watches_started.labels(kind).inc()

        async def counted() -> Any:
            gauge.inc()
            self.open_watches.streams.add(stream)
            try:
                async for chunk in stream.body():
                    yield chunk
            finally:
                self.open_watches.streams.discard(stream)
                gauge.dec()

        return StreamingResponse(
            counted(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"}
        )

    async def create(self, request: Request, namespace: str | None) -> Response:
        document = parse_json(await request.body())
        obj = check_object(self.cls, document, namespace, None)
        await admission.admit(self.store, obj)
        return json_response(await writes.create(self.store, obj), 201)

    async def get(self, namespace: str | None, name: str) -> Response:
        return json_response(await self.store.get(self.cls.KIND, namespace, name))

    async def replace(self, request: Request, namespace: str | None, name: str) -> Response:
        document = parse_json(await request.body())
        obj = check_object(self.cls, document, namespace, name)
        await admission.admit(self.store, obj)
        return json_response(await writes.replace(self.store, obj))

    async def replace_status(self, request: Request, namespace: str | None, name: str) -> Response:
        document = parse_json(await request.body())
        obj = check_object(self.cls, document, namespace, name)
        return json_response(await writes.replace_status(self.store, obj))

    async def delete(self, namespace: str | None, name: str, force: bool) -> Response:
        last = await writes.delete(self.store, self.cls.KIND, namespace, name, force=force)
        return json_response(last)


def add_resource_routes(
    router: APIRouter,
    cls: type[Resource],
    store: Store,
    metrics: ApiMetrics,
    *,
    lines: LineCache,
    open_watches: OpenWatches,
) -> None:
    """Add the routes of one kind (see the module docstring for the layout) to `router`.

    The app adds every kind to its own router: FastAPI matches included routers one by one,
    which cost more per request than the whole rest of a create."""
    k = KindRoutes(cls, store, metrics, lines, open_watches)
    tags: list[str | Enum] = [cls.KIND]
    kind = cls.KIND
    body = body_schema(cls)
    watch_q = Query(False, description="stream changes as NDJSON instead of listing")
    rv_q = Query(None, alias="resourceVersion", description="watch changes after this revision")
    sel_q = Query(None, alias="labelSelector", description="e.g. app=web,tier!=db")
    force_q = Query(False, description="delete now, ignoring finalizers")

    async def list_all(
        request: Request,
        watch: bool = watch_q,
        resource_version: str | None = rv_q,
        label_selector: str | None = sel_q,
    ) -> Response:
        return await k.list_or_watch(request, None, watch, resource_version, label_selector)

    router.add_api_route(
        f"/api/v1/{cls.PLURAL}",
        list_all,
        tags=tags,
        methods=["GET"],
        name=f"list {kind}",
        summary=f"List or watch {kind} objects",
    )
    if cls.NAMESPACED:
        base = f"/api/v1/namespaces/{{namespace}}/{cls.PLURAL}"

        async def list_ns(
            request: Request,
            namespace: str,
            watch: bool = watch_q,
            resource_version: str | None = rv_q,
            label_selector: str | None = sel_q,
        ) -> Response:
            return await k.list_or_watch(
                request, namespace, watch, resource_version, label_selector
            )

        async def create_ns(request: Request, namespace: str) -> Response:
            return await k.create(request, namespace)

        async def get_ns(namespace: str, name: str) -> Response:
            return await k.get(namespace, name)

        async def put_ns(request: Request, namespace: str, name: str) -> Response:
            return await k.replace(request, namespace, name)

        async def status_ns(request: Request, namespace: str, name: str) -> Response:
            return await k.replace_status(request, namespace, name)

        async def delete_ns(namespace: str, name: str, force: bool = force_q) -> Response:
            return await k.delete(namespace, name, force)

        handlers: tuple[Callable[..., Awaitable[Response]], ...] = (
            list_ns,
            create_ns,
            get_ns,
            put_ns,
            status_ns,
            delete_ns,
        )
    else:
        base = f"/api/v1/{cls.PLURAL}"

        async def create_cl(request: Request) -> Response:
            return await k.create(request, None)

        async def get_cl(name: str) -> Response:
            return await k.get(None, name)

        async def put_cl(request: Request, name: str) -> Response:
            return await k.replace(request, None, name)

        async def status_cl(request: Request, name: str) -> Response:
            return await k.replace_status(request, None, name)

        async def delete_cl(name: str, force: bool = force_q) -> Response:
            return await k.delete(None, name, force)

        handlers = (list_all, create_cl, get_cl, put_cl, status_cl, delete_cl)
    list_h, create_h, get_h, put_h, status_h, delete_h = handlers
    if cls.NAMESPACED:
        router.add_api_route(
            base,
            list_h,
            tags=tags,
            methods=["GET"],
            name=f"list namespaced {kind}",
            summary=f"List or watch {kind} objects in a namespace",
        )
    router.add_api_route(
        base,
        create_h,
        tags=tags,
        methods=["POST"],
        name=f"create {kind}",
        status_code=201,
        openapi_extra=body,
        summary=f"Create a {kind}",
    )
    item = f"{base}/{{name}}"
    router.add_api_route(
        item, get_h, tags=tags, methods=["GET"], name=f"get {kind}", summary=f"Read a {kind}"
    )
    router.add_api_route(
        item,
        put_h,
        tags=tags,
        methods=["PUT"],
        name=f"replace {kind}",
        openapi_extra=body,
        summary=f"Replace a {kind} (status is kept)",
    )
    router.add_api_route(
        item,
        delete_h,
        tags=tags,
        methods=["DELETE"],
        name=f"delete {kind}",
        summary=f"Delete a {kind} (finalizers delay it)",
    )
    if cls.HAS_STATUS:
        router.add_api_route(
            f"{item}/status",
            status_h,
            tags=tags,
            methods=["PUT"],
            name=f"replace {kind} status",
            openapi_extra=body,
            summary=f"Replace the status of a {kind} (only the status)",
        )
