"""Running the API server: `serve_api(store, host, port)` (or `serve_app(app, host, port)` for
an app the caller keeps, e.g. to hand it to its own in-process clients) runs uvicorn inside the
current event loop, so the same process can run controllers and the agent; cancelling the task (or
SIGINT/SIGTERM when run as `python -m shoal.server.serve`) shuts it down gracefully: open
watch streams are closed, in-flight requests finish.

`python -m shoal.server` (a bare API server over a SQLite data dir, see `__main__`) is what
the API benchmark starts; `shoal server` composes the full control plane elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence

import uvicorn
from fastapi import APIRouter, FastAPI

from shoal.server.app import create_app
from shoal.store.base import Store

# Watch streams never end on their own; uvicorn waits this long for them before it cancels.
SHUTDOWN_GRACE_SECONDS = 2


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding process owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_api(
    store: Store,
    host: str,
    port: int,
    *,
    extra_routers: Sequence[APIRouter] = (),
    ready: asyncio.Event | None = None,
) -> None:
    """Serve the API over `store` until cancelled. `ready` is set once the socket is listening."""
    await serve_app(create_app(store, extra_routers=extra_routers), host, port, ready=ready)


async def serve_app(
    app: FastAPI, host: str, port: int, *, ready: asyncio.Event | None = None
) -> None:
    """Serve an app made by `create_app` until cancelled (`serve_api`)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    server = _EmbeddedServer(config)
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            if serving.done():
                await serving  # raises the bind error, if any
                raise RuntimeError(f"API server stopped before listening on {host}:{port}")
            await asyncio.sleep(0.01)
        if ready is not None:
            ready.set()
        await asyncio.shield(serving)
    finally:
        app.state.open_watches.finish_all()  # watch clients see a clean end of stream
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
