"""MemoryStore beyond the shared contract (test_store_contract.py runs that against it too):
what unit tests elsewhere may rely on, and the watch hub it is a thin wrapper around."""

from __future__ import annotations

import asyncio

import pytest
from store_samples import pod

from shoal.api.errors import Gone, Invalid
from shoal.store._records import Change
from shoal.store._watch import WatchHub
from shoal.store.memory import MemoryStore


async def test_watchers_have_the_event_when_the_write_returns() -> None:
    """Writes are synchronous: a test can write and then read the watch without sleeping."""
    store = MemoryStore()
    watch = store.watch(0)
    first = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)  # subscribed
    await store.create(pod("a"))
    await store.create(pod("b"))
    assert (await first).revision == 1
    assert (await asyncio.wait_for(anext(watch), timeout=5)).revision == 2
    await watch.aclose()  # type: ignore[attr-defined]
    await store.close()


async def test_without_history_only_the_current_revision_can_be_watched() -> None:
    store = MemoryStore(history_limit=0)
    await store.create(pod("a"))
    with pytest.raises(Gone):
        await anext(store.watch(0))
    watch = store.watch(1)
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)
    await store.create(pod("b"))
    assert (await asyncio.wait_for(pending, timeout=5)).revision == 2
    await store.close()


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "Pod"},
        {"kind": "Pod", "metadata": {"namespace": "default"}},
        {"metadata": {"name": "a"}},
        {"kind": "Pod", "metadata": {"name": "a", "namespace": 3}},
        {"kind": "Pod", "metadata": {"name": "a"}, "spec": {"x": object()}},
    ],
)
async def test_objects_the_store_cannot_keep_are_invalid(bad: dict[str, object]) -> None:
    store = MemoryStore()
    with pytest.raises(Invalid):
        await store.create(bad)
    assert await store.revision() == 0


def test_the_hub_refuses_history_out_of_order() -> None:
    hub = WatchHub(revision=3, ring_size=10, queue_limit=10)
    hub.publish(Change("ADDED", 4, "Pod", "default", b'{"metadata":{}}'))
    with pytest.raises(RuntimeError, match="out of order"):
        hub.publish(Change("ADDED", 6, "Pod", "default", b'{"metadata":{}}'))
