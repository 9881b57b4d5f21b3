"""Fixtures for the store tests: every contract test runs against both implementations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from store_samples import StoreFactory

from shoal.store.base import Store
from shoal.store.memory import MemoryStore
from shoal.store.sqlite import SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Build stores of the parametrized implementation; all are closed after the test.
    Keyword arguments: history_limit, watch_queue_limit (and SqliteStore's own options)."""
    opened: list[Store] = []

    def make(**options: Any) -> Store:
        store: Store
        if request.param == "memory":
            options.pop("memory_history", None)
            store = MemoryStore(**options)
        else:
            store = SqliteStore(tmp_path / f"store{len(opened)}.db", **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    return make_store()
