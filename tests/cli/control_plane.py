"""A control plane for the CLI tests, run as a child process: the API server over SQLite
plus the controllers, without a node agent (pods are made ready through the status API).

`python control_plane.py --data-dir DIR --port N`; SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal

from shoal.client import AsyncClient
from shoal.controllers.manager import run_controllers
from shoal.server.serve import serve_api
from shoal.store.sqlite import SqliteStore


async def run(data_dir: str, port: int) -> None:
    store = SqliteStore(os.path.join(data_dir, "shoal.db"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ready = asyncio.Event()
    api = asyncio.ensure_future(serve_api(store, "127.0.0.1", port, ready=ready))
    await ready.wait()
    client = AsyncClient(f"http://127.0.0.1:{port}")
    controllers = asyncio.ensure_future(run_controllers(client, stop=stop))
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(controllers, 10)
        api.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await api
        await client.close()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="control-plane %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run(args.data_dir, args.port))


if __name__ == "__main__":
    main()
