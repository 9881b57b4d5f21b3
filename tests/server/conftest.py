"""Fixtures for the API server tests: an app over the in-memory store, reached through
httpx's ASGI transport (no sockets)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from server_samples import free_port

from shoal.server.app import create_app
from shoal.server.serve import serve_api
from shoal.store.memory import MemoryStore


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(history_limit=50)


@pytest.fixture
async def api(store: MemoryStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://shoal.test") as client:
        yield client


@pytest.fixture
async def live_url(store: MemoryStore) -> AsyncIterator[str]:
    """A real uvicorn serving the app on a free 127.0.0.1 port, in this event loop."""
    ready = asyncio.Event()
    port = free_port()
    task = asyncio.create_task(serve_api(store, "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    yield f"http://127.0.0.1:{port}"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
