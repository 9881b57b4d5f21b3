"""Fixtures of the differ tests: an in-process API server (MemoryStore) on a free port.

Importing `shoal.api.diffreport` first registers the DiffReport kind, so the app serves it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest

import shoal.api.diffreport  # noqa: F401 - registers the kind before the app is built
from shoal.server.serve import serve_api
from shoal.store.memory import MemoryStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def api_url() -> AsyncIterator[str]:
    store = MemoryStore()
    port = free_port()
    ready = asyncio.Event()
    task = asyncio.create_task(serve_api(store, "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    yield f"http://127.0.0.1:{port}"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await store.close()
