"""An API server in the test's event loop (uvicorn on a free 127.0.0.1 port, in-memory store),
for the agent's unit tests that talk to the API through the real client: test_worker,
test_runner, test_node. Stopped when the context ends."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from shoal.client import AsyncClient
from shoal.server.serve import serve_api
from shoal.store.memory import MemoryStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_api() -> AsyncIterator[AsyncClient]:
    ready = asyncio.Event()
    port = free_port()
    server = asyncio.create_task(serve_api(MemoryStore(), "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        async with AsyncClient(f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(server, 10)


async def eventually(check: object, seconds: float = 10.0, interval: float = 0.01) -> None:
    """Wait until `check()` (sync or async) is truthy."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = check()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await asyncio.sleep(interval)
