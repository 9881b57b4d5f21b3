"""Fixtures for the API server tests: an app over the in-memory store, reached through
httpx's ASGI transport (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from shoal.server.app import create_app
from shoal.store.memory import MemoryStore


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(history_limit=50)


@pytest.fixture
async def api(store: MemoryStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://shoal.test") as client:
        yield client
