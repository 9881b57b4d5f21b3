"""The FastAPI application of the API server: `create_app(store)`.

Called by `shoal.server.serve.serve_api` (and tests, through httpx's ASGI transport). Routes
are generated per kind from `shoal.api.registry.KINDS` when the app is built, so kinds
registered by feature modules before that get routes too. Every error leaves as a
Kubernetes `Status` body: API errors with their code, FastAPI's own parameter validation
as 422 with causes, unknown routes as 404/405, a full disk under the store as 507
InsufficientStorage (SQLITE_FULL or ENOSPC behind the error), and anything unexpected as a 500
whose body says nothing internal (the traceback goes to the log).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException

import shoal
from shoal.api.errors import (
    ApiError,
    Cause,
    InsufficientStorage,
    Invalid,
    Unavailable,
    field_path,
)
from shoal.api.meta import API_VERSION
from shoal.api.registry import KINDS
from shoal.server.apply import add_apply_route
from shoal.server.metrics import ApiMetrics, MetricsMiddleware
from shoal.server.resources import add_resource_routes
from shoal.server.watch import LineCache, OpenWatches
from shoal.store.base import Store

log = logging.getLogger(__name__)

_REASONS = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
}


def status_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.to_status(), status_code=error.code)


def _http_status(code: int, message: str) -> JSONResponse:
    error = ApiError(message)
    error.code = code
    error.reason = _REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")
    return status_response(error)


def storage_full(error: BaseException) -> bool:
    """True when `error` or an exception behind it is a full disk: SQLite's SQLITE_FULL
    ("database or disk is full"; the store wraps it in an ApiError) or an OSError ENOSPC."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.Error) and (
            getattr(current, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            or "database or disk is full" in str(current)
        ):
            return True
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        current = current.__cause__ or current.__context__
    return False


def _insufficient_storage(request: Request, error: BaseException) -> Response:
    log.error("disk full on %s %s: %s", request.method, request.url.path, error)
    return status_response(
        InsufficientStorage(
            "the server's disk is full (the data directory has no space left): this write "
            "was not stored, and nothing stored before is lost; free some space on the "
            "server, then send it again"
        )
    )


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    if error.code == 500 and storage_full(error):
        return _insufficient_storage(request, error)
    return status_response(error)


async def _request_validation(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    causes = [
        Cause(
            field_path(tuple(item.get("loc", ()))[1:]) or "<request>",
            str(item.get("msg", "invalid")),
        )
        for item in error.errors()
    ]
    return status_response(Invalid("invalid request parameters", causes))


async def _http_exception(_request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return _http_status(error.status_code, str(error.detail))


async def _unexpected(request: Request, error: Exception) -> Response:
    if storage_full(error):
        return _insufficient_storage(request, error)
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return _http_status(500, "internal error; the server log has the details")


def _openapi_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the kinds' JSON Schemas, which the raw-body routes refer to."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, routes=app.routes, description=app.description
    )
    _, definitions = models_json_schema(
        [(cls, "validation") for cls in KINDS.values()],
        by_alias=True,
        ref_template="#/components/schemas/{model}",
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(definitions.get("$defs", {}))
    app.openapi_schema = schema
    return schema


def create_app(store: Store, *, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The API server for `store`; `extra_routers` are mounted as they are (e.g. toggles)."""
    app = FastAPI(
        title="shoal API",
        version=shoal.__version__,
        description="Desired-state deployment without containers (shoal/v1).",
    )
    metrics = ApiMetrics()
    app.state.store = store
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)

    @app.get("/healthz", tags=["server"], summary="Liveness: the store answers")
    async def healthz() -> Response:
        try:
            await store.revision()
        except Exception as error:
            log.warning("health check failed: %s", error)
            return status_response(Unavailable("store is not answering"))
        return PlainTextResponse("ok")

    @app.get("/version", tags=["server"], summary="Server and API version")
    async def version() -> dict[str, str]:
        return {"version": shoal.__version__, "apiVersion": API_VERSION}

    @app.get("/metrics", tags=["server"], summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    add_apply_route(app.router, store)
    lines, open_watches = LineCache(), OpenWatches()
    app.state.open_watches = open_watches
    for cls in list(KINDS.values()):
        add_resource_routes(app.router, cls, store, metrics, lines=lines, open_watches=open_watches)
    for router in extra_routers:
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        return _openapi_schema(app)

    app.openapi = openapi  # type: ignore[method-assign]
    return app
