"""Sample wire-form objects and helpers for the store tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from shoal.store.base import Store, WatchEvent

StoreFactory = Callable[..., Store]
"""The `make_store` fixture (conftest.py): builds a store of the implementation under test."""


def pod(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"command": ["sleep", "1"]},
        "status": {},
    }


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Node", "metadata": {"name": name}, "spec": {}}


async def collect(store: Store, since: int, count: int, **filters: Any) -> list[WatchEvent]:
    """The first `count` events of a watch, or fail after a generous timeout."""
    events: list[WatchEvent] = []
    if count == 0:
        return events

    async def run() -> None:
        async for event in store.watch(since, **filters):
            events.append(event)
            if len(events) == count:
                return

    await asyncio.wait_for(run(), timeout=20)
    return events
