"""Random operation sequences against a model, on MemoryStore and SqliteStore: every answer,
the final state, and the watch history from every revision (or Gone once compacted)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_samples import collect, pod

from shoal.api.errors import AlreadyExists, Conflict, Gone, NotFound
from shoal.store.base import Store
from shoal.store.memory import MemoryStore
from shoal.store.sqlite import SqliteStore

NAMES = ["a", "b", "c"]
NAMESPACES = ["default", "other"]
HISTORY_LIMIT = 6

operations = st.lists(
    st.tuples(
        st.sampled_from(["create", "update", "delete"]),
        st.sampled_from(NAMES),
        st.sampled_from(NAMESPACES),
        st.sampled_from(["web", "db"]),
        st.sampled_from(["none", "current", "stale"]),  # which expected revision to pass
    ),
    max_size=25,
)


def open_store(implementation: str, directory: str) -> Store:
    if implementation == "memory":
        return MemoryStore(history_limit=HISTORY_LIMIT)
    # a memory ring of 2 makes most resumed watches read the SQLite history; no fsync needed
    # for what this test checks (durability has its own test), and it keeps the test fast
    return SqliteStore(
        Path(directory) / "store.db", HISTORY_LIMIT, memory_history=2, synchronous="NORMAL"
    )


async def check_against_model(store: Store, ops: list[tuple[str, str, str, str, str]]) -> None:
    model: dict[tuple[str, str], tuple[int, str]] = {}  # (namespace, name) -> (revision, app)
    history: list[tuple[str, int, str, str]] = []  # (type, revision, namespace, name)
    revision = 0
    for action, name, namespace, app, expectation in ops:
        current = model.get((namespace, name))
        expected = {
            "none": None,
            "current": current[0] if current else 1,
            "stale": current[0] - 1 if current else 1,
        }[expectation]
        error: type[Exception] | None = None
        if action == "create":
            error = AlreadyExists if current else None
        elif current is None:
            error = NotFound
        elif expected is not None and expected != current[0]:
            error = Conflict
        try:
            if action == "delete":
                result = await store.delete("Pod", namespace, name, expected)
            elif action == "create":
                result = await store.create(pod(name, namespace, app=app))
            else:
                result = await store.update(pod(name, namespace, app=app), expected)
        except (AlreadyExists, NotFound, Conflict) as raised:
            assert type(raised) is error
            continue
        assert error is None
        revision += 1
        assert result["metadata"]["resourceVersion"] == str(revision)
        kind = {"create": "ADDED", "update": "MODIFIED", "delete": "DELETED"}[action]
        history.append((kind, revision, namespace, name))
        if action == "delete":
            assert current is not None
            assert result["metadata"]["labels"]["app"] == current[1]  # the last state
            del model[(namespace, name)]
        else:
            model[(namespace, name)] = (revision, app)

    assert await store.revision() == revision
    listed = await store.list("Pod")
    assert listed.revision == revision
    assert {
        (o["metadata"]["namespace"], o["metadata"]["name"]): (
            int(o["metadata"]["resourceVersion"]),
            o["metadata"]["labels"]["app"],
        )
        for o in listed.items
    } == model
    for since in range(revision + 1):
        if since < revision - HISTORY_LIMIT:
            with pytest.raises(Gone):
                await collect(store, since, 1)
            continue
        events = await collect(store, since, revision - since)
        assert [
            (e.type, e.revision, e.object["metadata"]["namespace"], e.object["metadata"]["name"])
            for e in events
        ] == history[since:]


@pytest.mark.parametrize("implementation", ["memory", "sqlite"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_random_operations_match_a_model(
    implementation: str, ops: list[tuple[str, str, str, str, str]]
) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as directory:
            store = open_store(implementation, directory)
            try:
                await check_against_model(store, ops)
            finally:
                await store.close()

    asyncio.run(run())
