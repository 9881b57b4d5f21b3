"""`shoal server`: the whole control plane in one process, and by default a node agent too.

API server (uvicorn in this event loop) over the SQLite store, the controllers and scheduler,
and the embedded agent. The controllers and the agent reach the API with the same client a
remote component would use (DESIGN rule 1): running them elsewhere is a deployment choice, not
a rewrite. In this process that client hands its requests to the app directly and only its
watches go over HTTP (`AsyncClient(app=...)`): the same routes, validation and admission,
without a socket round trip per write.

SIGINT/SIGTERM shut down in dependency order: the agent stops its pods and Envoy (nothing is
left running), then the controllers, then the API, then the store. kill -9 leaves pods and
Envoy serving; the next start re-adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from shoal.agent.runner import Agent, default_node_name
from shoal.client import AsyncClient
from shoal.controllers.manager import run_controllers
from shoal.server.app import create_app
from shoal.server.pods_routes import pods_router
from shoal.server.serve import serve_app
from shoal.server.toggles_routes import toggles_router
from shoal.store.sqlite import SqliteStore

log = logging.getLogger("shoal.server")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTROLLERS_STOP_SECONDS = 10.0


class ListenError(RuntimeError):
    """The API could not listen where it was asked to."""


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, not {listen!r}")
    return host, int(port)


def server_url(listen: str) -> str:
    host, port = parse_listen(listen)
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


async def _start_api(app: FastAPI, listen: str) -> asyncio.Task[None]:
    host, port = parse_listen(listen)
    ready = asyncio.Event()
    api = asyncio.create_task(serve_app(app, host, port, ready=ready))
    waiter = asyncio.ensure_future(ready.wait())
    await asyncio.wait({api, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if api.done():
        try:
            api.result()
        except BaseException as error:  # uvicorn exits with SystemExit on a bind error
            raise ListenError(f"cannot listen on {listen}: {error!r}") from None
        raise ListenError(f"the API stopped before listening on {listen}")
    return api


async def serve(
    data_dir: Path,
    listen: str,
    *,
    stop: asyncio.Event,
    agent: bool = True,
    node_name: str | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set, then shut down gracefully. Raises ListenError at start."""
    data_dir = Path(os.path.abspath(data_dir))  # noqa: ASYNC240 - once, at start
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(data_dir / "shoal.db")
    app = create_app(store, extra_routers=[toggles_router(), pods_router()])
    try:
        api = await _start_api(app, listen)
    except ListenError:
        await store.close()
        raise
    url = server_url(listen)
    client = AsyncClient(url, app=app)  # the same API, in this process without HTTP but watches
    parts_stop = asyncio.Event()
    controllers = asyncio.create_task(run_controllers(client, stop=parts_stop))
    agent_stop = asyncio.Event()
    agent_task: asyncio.Task[None] | None = None
    if agent:
        runner = Agent(
            client, server_url=url, node_name=node_name or default_node_name(),
            data_dir=data_dir / "agent",
        )  # fmt: skip
        agent_task = asyncio.create_task(runner.run(agent_stop))
    log.info("shoal server listening on %s (data dir %s)", url, data_dir)
    if started is not None:
        started.set()
    try:
        parts = {api, controllers} | ({agent_task} if agent_task else set())
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait(parts | {stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done & parts:
            if not task.cancelled() and task.exception() is not None:
                log.error("a server component failed: %r", task.exception())
    finally:
        agent_stop.set()
        if agent_task is not None:
            with contextlib.suppress(Exception):
                await agent_task
        parts_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(controllers, CONTROLLERS_STOP_SECONDS)
        await client.close()
        api.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await api
        await store.close()


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (a dependency): the server, controllers and agent share one loop,
    and uvloop makes its sockets, timers and probes several times cheaper."""
    try:
        import uvloop  # noqa: PLC0415 - optional at import time, chosen at start
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(data_dir: Path, listen: str, *, agent: bool = True, node_name: str | None = None) -> None:
    """Entry point of `shoal server`: serve until SIGINT/SIGTERM."""
    configure_logging()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_serve_until_signalled(data_dir, listen, agent, node_name))


async def _serve_until_signalled(
    data_dir: Path, listen: str, agent: bool, node_name: str | None
) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        await serve(Path(data_dir), listen, stop=stop, agent=agent, node_name=node_name)
    except ListenError as error:
        print(f"error: {error}; is another shoal server running there?", file=sys.stderr)
        raise SystemExit(1) from None
