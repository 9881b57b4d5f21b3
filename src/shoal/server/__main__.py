"""`python -m shoal.server --data-dir DIR [--host H] [--port P]`: a bare API server over a
SQLite data dir, without controllers or agent. Used by the API benchmark and for poking at
the API; `shoal server` is the full control plane. SIGINT/SIGTERM shut it down gracefully.
Runs on uvloop when it is installed (uvicorn then also picks httptools for HTTP parsing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from typing import Literal

from shoal.server.serve import serve_api
from shoal.store.sqlite import SqliteStore

Synchronous = Literal["FULL", "NORMAL"]


async def run(data_dir: str, host: str, port: int, synchronous: Synchronous = "FULL") -> None:
    os.makedirs(data_dir, exist_ok=True)
    store = SqliteStore(os.path.join(data_dir, "shoal.db"), synchronous=synchronous)
    task = asyncio.ensure_future(serve_api(store, host, port))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await store.close()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a bare shoal API server (no controllers).")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7070)
    parser.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="SQLite fsync policy (see shoal.store.sqlite)",
    )
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(run(args.data_dir, args.host, args.port, args.synchronous))


if __name__ == "__main__":
    main()
