"""`shoal agent`: a node agent on its own, for a machine that joins a remote `shoal server`.

SIGINT/SIGTERM stop this node's pods and its Envoy, then exit; kill -9 leaves them serving and
the next agent re-adopts them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from shoal.agent.runner import Agent, default_node_name
from shoal.client import AsyncClient


def run(
    server: str, data_dir: Path, node_name: str | None = None, address: str = "127.0.0.1"
) -> None:
    """Entry point of `shoal agent`: run until SIGINT/SIGTERM (on uvloop when installed).
    `address`: the node's IP (agent API, Envoy listeners, Node.status.address)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_run(server, data_dir, node_name, address))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional at import time, chosen at start
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run(server: str, data_dir: Path, node_name: str | None, address: str) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with AsyncClient(server) as client:
        agent = Agent(
            client, server_url=server, node_name=node_name or default_node_name(),
            data_dir=Path(os.path.abspath(data_dir)),  # noqa: ASYNC240 - once, at start
            address=address,
        )  # fmt: skip
        await agent.run(stop)
