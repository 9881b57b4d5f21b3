"""Running the API server: `serve_api(store, host, port)` runs uvicorn inside the current
event loop, so the same process can run controllers and the agent; cancelling the task (or
SIGINT/SIGTERM when run as `python -m shoal.server.serve`) shuts it down gracefully: open
watch streams are closed, in-flight requests finish.

The `__main__` entry point (a bare API server over a SQLite data dir) is what the API
benchmark starts; `shoal server` composes the full control plane elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator, Sequence

import uvicorn
from fastapi import APIRouter

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
    """Serve until cancelled. `ready` is set once the socket is listening."""
    app = create_app(store, extra_routers=extra_routers)
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
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def _main(data_dir: str, host: str, port: int) -> None:
    # Imported here: only the stand-alone entry point needs a concrete store.
    from shoal.store.sqlite import SqliteStore  # noqa: PLC0415

    os.makedirs(data_dir, exist_ok=True)
    store = SqliteStore(os.path.join(data_dir, "shoal.db"))
    task = asyncio.ensure_future(serve_api(store, host, port))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a bare shoal API server (no controllers).")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7070)
    args = parser.parse_args(argv)
    asyncio.run(_main(args.data_dir, args.host, args.port))


if __name__ == "__main__":
    main()
