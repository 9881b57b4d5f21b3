"""The `Store` contract, run against MemoryStore and SqliteStore alike (see conftest.py)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from store_samples import StoreFactory, collect, node, pod

from shoal.api.errors import AlreadyExists, Conflict, Gone, NotFound
from shoal.api.selectors import parse_selector
from shoal.store.base import Store

# -- CRUD ---------------------------------------------------------------------------------


async def test_create_sets_resource_version_and_get_returns_it(store: Store) -> None:
    created = await store.create(pod("a"))
    assert created["metadata"]["resourceVersion"] == "1"
    assert await store.revision() == 1
    assert await store.get("Pod", "default", "a") == created


async def test_returned_objects_are_copies(store: Store) -> None:
    original = pod("a", app="web")
    created = await store.create(original)
    original["metadata"]["labels"]["app"] = "changed-input"
    created["metadata"]["labels"]["app"] = "changed-result"
    fetched = await store.get("Pod", "default", "a")
    fetched["spec"]["command"].append("x")
    again = await store.get("Pod", "default", "a")
    assert again["metadata"]["labels"] == {"app": "web"}
    assert again["spec"]["command"] == ["sleep", "1"]
    assert "resourceVersion" not in original["metadata"]


async def test_create_twice_is_already_exists_and_changes_nothing(store: Store) -> None:
    await store.create(pod("a"))
    with pytest.raises(AlreadyExists):
        await store.create(pod("a"))
    assert await store.revision() == 1
    await store.create(pod("a", namespace="other"))  # another namespace: another object
    assert await store.revision() == 2


async def test_get_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get("Pod", "default", "nope")
    await store.create(pod("a"))
    with pytest.raises(NotFound):
        await store.get("Node", "default", "a")


async def test_cluster_scoped_objects_have_no_namespace(store: Store) -> None:
    await store.create(node("n1"))
    assert (await store.get("Node", None, "n1"))["metadata"]["name"] == "n1"
    assert (await store.get("Node", "", "n1"))["metadata"]["name"] == "n1"
    assert [o["metadata"]["name"] for o in (await store.list("Node")).items] == ["n1"]


async def test_list_by_kind_and_namespace_at_the_current_revision(store: Store) -> None:
    await store.create(pod("b", namespace="ns1"))
    await store.create(pod("a", namespace="ns2"))
    await store.create(pod("c", namespace="ns1"))
    await store.create(node("n1"))
    everywhere = await store.list("Pod")
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everywhere.items] == [
        ("ns1", "b"),
        ("ns1", "c"),
        ("ns2", "a"),
    ]
    assert everywhere.revision == 4
    in_ns1 = await store.list("Pod", "ns1")
    assert [o["metadata"]["name"] for o in in_ns1.items] == ["b", "c"]
    assert (await store.list("Pod", "empty")).items == []


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["web1", "web2"]),
        ("app!=web", ["db", "plain"]),
        ("app in (web,db)", ["db", "web1", "web2"]),
        ("app notin (web)", ["db", "plain"]),
        ("app=web,tier=front", ["web1"]),
        ("tier", ["web1", "web2"]),
        ("!tier", ["db", "plain"]),
        ("", ["db", "plain", "web1", "web2"]),
    ],
)
async def test_list_filters_by_label_selector(
    store: Store, selector: str, expected: list[str]
) -> None:
    await store.create(pod("web1", app="web", tier="front"))
    await store.create(pod("web2", app="web", tier="back"))
    await store.create(pod("db", app="db"))
    await store.create(pod("plain"))
    result = await store.list("Pod", "default", parse_selector(selector))
    assert [o["metadata"]["name"] for o in result.items] == expected


async def test_update_with_compare_and_set(store: Store) -> None:
    created = await store.create(pod("a"))
    created["spec"]["command"] = ["true"]
    updated = await store.update(created, expected_revision=1)
    assert updated["metadata"]["resourceVersion"] == "2"
    assert (await store.get("Pod", "default", "a"))["spec"]["command"] == ["true"]
    with pytest.raises(Conflict):
        await store.update(created, expected_revision=1)  # stale
    assert await store.revision() == 2
    unconditional = await store.update(created)
    assert unconditional["metadata"]["resourceVersion"] == "3"


async def test_update_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.update(pod("ghost"))
    with pytest.raises(NotFound):
        await store.update(pod("ghost"), expected_revision=1)
    assert await store.revision() == 0


async def test_delete_returns_last_state_at_the_deletion_revision(store: Store) -> None:
    await store.create(pod("a", app="web"))
    with pytest.raises(Conflict):
        await store.delete("Pod", "default", "a", expected_revision=7)
    deleted = await store.delete("Pod", "default", "a", expected_revision=1)
    assert deleted["metadata"]["resourceVersion"] == "2"
    assert deleted["metadata"]["labels"] == {"app": "web"}
    with pytest.raises(NotFound):
        await store.get("Pod", "default", "a")
    with pytest.raises(NotFound):
        await store.delete("Pod", "default", "a")
    assert await store.revision() == 2
    recreated = await store.create(pod("a"))
    assert recreated["metadata"]["resourceVersion"] == "3"


async def test_concurrent_read_modify_write_loses_no_update(store: Store) -> None:
    counter = pod("counter")
    counter["spec"]["count"] = 0
    await store.create(counter)
    clients, increments = 12, 15
    conflicts = 0

    async def client() -> None:
        nonlocal conflicts
        for _ in range(increments):
            while True:
                current = await store.get("Pod", "default", "counter")
                await asyncio.sleep(0)  # let the others interleave between read and write
                current["spec"]["count"] += 1
                try:
                    await store.update(
                        current, expected_revision=int(current["metadata"]["resourceVersion"])
                    )
                    break
                except Conflict:
                    conflicts += 1

    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(clients))), timeout=60)
    final = await store.get("Pod", "default", "counter")
    assert final["spec"]["count"] == clients * increments
    # one revision for the create plus one per successful write; no loser wrote
    assert await store.revision() == 1 + clients * increments
    assert conflicts > 0  # the test did exercise the race


# -- watch --------------------------------------------------------------------------------


async def _write_mixed_history(store: Store) -> None:
    a = await store.create(pod("a"))  # 1
    await store.create(pod("b", namespace="other"))  # 2
    await store.create(node("n1"))  # 3
    a["spec"]["command"] = ["true"]
    await store.update(a)  # 4
    await store.delete("Pod", "default", "a")  # 5
    await store.create(pod("c"))  # 6


async def test_watch_replays_history_with_types_and_objects(store: Store) -> None:
    await _write_mixed_history(store)
    events = await collect(store, 0, 6)
    assert [(e.type, e.revision) for e in events] == [
        ("ADDED", 1),
        ("ADDED", 2),
        ("ADDED", 3),
        ("MODIFIED", 4),
        ("DELETED", 5),
        ("ADDED", 6),
    ]
    assert all(e.object["metadata"]["resourceVersion"] == str(e.revision) for e in events)
    deleted = events[4].object
    assert deleted["metadata"]["name"] == "a"
    assert deleted["spec"]["command"] == ["true"]  # the last state


async def test_watch_resumed_from_every_revision_sees_the_rest_once(store: Store) -> None:
    await _write_mixed_history(store)
    for since in range(6):
        events = await collect(store, since, 6 - since)
        assert [e.revision for e in events] == list(range(since + 1, 7))


async def test_watch_filters_by_kind_and_namespace(store: Store) -> None:
    await _write_mixed_history(store)
    pods = await collect(store, 0, 4, kind="Pod")
    assert [e.revision for e in pods] == [1, 2, 4, 5]  # later: 6
    in_default = await collect(store, 0, 4, kind="Pod", namespace="default")
    assert [e.revision for e in in_default] == [1, 4, 5, 6]
    nodes = await collect(store, 0, 1, kind="Node")
    assert [e.object["metadata"]["name"] for e in nodes] == ["n1"]
    late = asyncio.create_task(collect(store, 6, 1, kind="Node"))
    await store.create(pod("d"))  # filtered out
    await store.create(node("n2"))
    assert [e.revision for e in await late] == [8]


async def test_watch_hands_over_from_history_to_live_without_gaps(store: Store) -> None:
    """Watchers start at random moments while many writers run: each must see exactly the
    revisions after its starting point, in order, once."""
    writers, per_writer = 8, 25
    total = writers * per_writer

    async def writer(index: int) -> None:
        for i in range(per_writer):
            await store.create(pod(f"w{index}-{i}"))
            if i % 5 == 0:
                await asyncio.sleep(0)

    async def late_watcher(delay: int) -> tuple[int, list[int]]:
        for _ in range(delay):  # start at some moment during the writes
            await asyncio.sleep(0)
        since = max(0, await store.revision() - delay % 7)  # and a little in the past
        events = await collect(store, since, total - since)
        return since, [e.revision for e in events]

    watchers = [asyncio.create_task(late_watcher(n * 3)) for n in range(20)]
    await asyncio.gather(*(writer(i) for i in range(writers)))
    for since, revisions in await asyncio.gather(*watchers):
        assert revisions == list(range(since + 1, total + 1))


async def test_compacted_revision_is_gone(make_store: StoreFactory) -> None:
    store = make_store(history_limit=5)
    for i in range(12):
        await store.create(pod(f"p{i}"))
    with pytest.raises(Gone):
        await collect(store, 6, 1)
    events = await collect(store, 7, 5)
    assert [e.revision for e in events] == [8, 9, 10, 11, 12]


async def test_slow_watcher_is_cut_off_with_gone_and_others_are_not(
    make_store: StoreFactory,
) -> None:
    store = make_store(watch_queue_limit=10)
    await store.create(pod("first"))
    slow = store.watch(0)
    assert (await anext(slow)).revision == 1  # subscribed; from now on it does not read
    fast = asyncio.create_task(collect(store, 1, 40))
    await asyncio.sleep(0)
    for i in range(40):
        await store.create(pod(f"p{i}"))
        await asyncio.sleep(0)  # a MemoryStore write never yields by itself
    assert [e.revision for e in await fast] == list(range(2, 42))
    with pytest.raises(Gone):
        async for _ in slow:
            pass


async def test_close_ends_watches(make_store: StoreFactory) -> None:
    store = make_store()
    await store.create(pod("a"))
    seen: list[int] = []
    first_seen = asyncio.Event()

    async def watch() -> None:
        async for event in store.watch(0):
            seen.append(event.revision)
            first_seen.set()

    task = asyncio.create_task(watch())
    await asyncio.wait_for(first_seen.wait(), timeout=10)
    await store.close()
    await asyncio.wait_for(task, timeout=10)
    assert seen == [1]


def watcher_count(store: Store) -> int:
    stats: dict[str, int] = cast(Any, store).stats()  # both stores have stats(); not the protocol
    return stats["watchers"]


async def test_many_watchers_each_get_every_event(store: Store) -> None:
    watchers = [asyncio.create_task(collect(store, 0, 30, kind="Pod")) for _ in range(150)]
    await asyncio.sleep(0)
    for i in range(30):
        await store.create(pod(f"p{i}"))
        await store.create(node(f"n{i}"))  # filtered out by every watcher
    for events in await asyncio.gather(*watchers):
        assert [e.revision for e in events] == list(range(1, 61, 2))
    assert watcher_count(store) == 0


async def test_a_stopped_watch_unsubscribes(store: Store) -> None:
    await store.create(pod("a"))
    closed = store.watch(0)
    assert (await anext(closed)).revision == 1
    # the server's pattern: a pending read in a task, cancelled when the client goes away
    cancelled = store.watch(1)
    pending = asyncio.ensure_future(anext(cancelled))
    await asyncio.sleep(0)
    assert watcher_count(store) == 2
    await cast(Any, closed).aclose()
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert watcher_count(store) == 0
    await store.create(pod("b"))  # nobody left to deliver to; nothing breaks
