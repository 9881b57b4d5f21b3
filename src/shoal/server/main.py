"""`shoal server`: the whole control plane in one process, and by default a node agent too.

API server (uvicorn in this event loop) over the SQLite store, the controllers and scheduler,
and the embedded agent. The controllers and the agent reach the API over HTTP with the same
client a remote component would use (DESIGN rule 1): running them elsewhere is a deployment
choice, not a rewrite.

SIGINT/SIGTERM shut down in dependency order: the agent stops its pods and Envoy (nothing is
left running), then the controllers, then the API, then the store. kill -9 leaves pods and
Envoy serving; the next start re-adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from shoal.agent.runner import Agent, default_node_name
from shoal.client import AsyncClient
from shoal.controllers.manager import run_controllers
from shoal.server.pods_routes import pods_router
from shoal.server.serve import serve_api
from shoal.server.toggles_routes import toggles_router
from shoal.store.sqlite import SqliteStore

log = logging.getLogger("shoal.server")


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, not {listen!r}")
    return host, int(port)


async def serve(
    data_dir: Path,
    listen: str,
    *,
    stop: asyncio.Event,
    agent: bool = True,
    node_name: str | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set, then shut down gracefully."""
    host, port = parse_listen(listen)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(data_dir / "shoal.db")
    api_ready = asyncio.Event()
    api = asyncio.create_task(
        serve_api(
            store, host, port, extra_routers=[toggles_router(), pods_router()], ready=api_ready
        )
    )
    done, _ = await asyncio.wait(
        {api, asyncio.ensure_future(api_ready.wait())}, return_when=asyncio.FIRST_COMPLETED
    )
    if api in done:
        await store.close()
        api.result()  # raises the bind error
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    client = AsyncClient(url)
    parts_stop = asyncio.Event()
    controllers = asyncio.create_task(run_controllers(client, stop=parts_stop))
    agent_task: asyncio.Task[None] | None = None
    agent_stop = asyncio.Event()
    if agent:
        runner = Agent(
            client,
            server_url=url,
            node_name=node_name or default_node_name(),
            data_dir=data_dir / "agent",
        )
        agent_task = asyncio.create_task(runner.run(agent_stop))
    log.info("shoal server listening on %s (data dir %s)", url, data_dir)
    if started is not None:
        started.set()
    try:
        waiters = {asyncio.ensure_future(stop.wait()), api, controllers}
        if agent_task is not None:
            waiters.add(agent_task)
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not api and task.done() and task.exception() is not None:
                log.error("a server component failed: %r", task.exception())
    finally:
        agent_stop.set()
        if agent_task is not None:
            with contextlib.suppress(Exception):
                await agent_task
        parts_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(controllers, 10)
        await client.close()
        api.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await api
        await store.close()


async def run(
    data_dir: Path, listen: str, *, agent: bool = True, node_name: str | None = None
) -> None:
    """Entry point of `shoal server`: serve until SIGINT/SIGTERM."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(Path(data_dir), listen, stop=stop, agent=agent, node_name=node_name)
