"""Watch streaming through a real uvicorn (in this event loop): initial state, resume,
410 for an expired revision, label-selector transitions, bookmarks, disconnect cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from server_samples import free_port, pod

from shoal.server import watch as watch_module
from shoal.server.serve import serve_api
from shoal.store.memory import MemoryStore

PODS = "/api/v1/namespaces/default/pods"


async def lines(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.strip():
            yield json.loads(line)


async def take(stream: AsyncIterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [await anext(stream) for _ in range(count)]

    return await asyncio.wait_for(collect(), 10)


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


async def test_watch_from_zero_then_live(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        await http.post(PODS, json=pod("a"))
        async with http.stream("GET", PODS, params={"watch": "true"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/x-ndjson")
            events = lines(response)
            assert summary(await take(events, 1)) == [("ADDED", "a")]
            await http.post(PODS, json=pod("b"))
            await http.delete(f"{PODS}/a")
            assert summary(await take(events, 2)) == [("ADDED", "b"), ("DELETED", "a")]


async def test_resume_sees_only_later_changes_in_order(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        first = (await http.post(PODS, json=pod("a"))).json()
        since = first["metadata"]["resourceVersion"]
        await http.post(PODS, json=pod("b"))
        await http.put(f"{PODS}/b", json=pod("b", app="api"))
        params = {"watch": "true", "resourceVersion": since}
        async with http.stream("GET", PODS, params=params) as response:
            got = await take(lines(response), 2)
    assert summary(got) == [("ADDED", "b"), ("MODIFIED", "b")]
    revisions = [int(e["object"]["metadata"]["resourceVersion"]) for e in got]
    assert revisions == sorted(revisions) and revisions[0] > int(since)


async def test_expired_revision_is_410(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        for index in range(70):  # the fixture store keeps 50 changes
            await http.post(PODS, json=pod(f"p{index}"))
        answer = await http.get(PODS, params={"watch": "true", "resourceVersion": "1"})
    assert answer.status_code == 410
    assert answer.json()["kind"] == "Status" and answer.json()["reason"] == "Expired"


async def test_selector_transitions_become_added_and_deleted(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        await http.post(PODS, json=pod("a", app="web"))
        params = {"watch": "true", "labelSelector": "app=web"}
        async with http.stream("GET", PODS, params=params) as response:
            events = lines(response)
            assert summary(await take(events, 1)) == [("ADDED", "a")]
            await http.post(PODS, json=pod("other", app="db"))
            await http.put(f"{PODS}/a", json=pod("a", app="db"))  # stops matching
            await http.put(f"{PODS}/other", json=pod("other", app="web"))  # starts matching
            await http.put(f"{PODS}/other", json=pod("other", app="web", v="2"))
            got = await take(events, 3)
    assert summary(got) == [("DELETED", "a"), ("ADDED", "other"), ("MODIFIED", "other")]


async def test_bookmarks_carry_the_last_revision(
    live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch_module, "BOOKMARK_SECONDS", 0.2)
    async with httpx.AsyncClient(base_url=live_url) as http:
        created = (await http.post(PODS, json=pod("a"))).json()
        async with http.stream("GET", PODS, params={"watch": "true"}) as response:
            got = await take(lines(response), 2)
    assert got[0]["type"] == "ADDED"
    assert got[1]["type"] == "BOOKMARK"
    assert got[1]["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_disconnect_closes_the_stream(live_url: str) -> None:
    gauge = 'shoal_api_watches{kind="Pod"}'

    async def open_watches(http: httpx.AsyncClient) -> float:
        for line in (await http.get("/metrics")).text.splitlines():
            if line.startswith(gauge):
                return float(line.split()[-1])
        return 0.0

    tasks_before = len(asyncio.all_tasks())
    async with httpx.AsyncClient(base_url=live_url) as http:
        await http.post(PODS, json=pod("a"))
        async with (
            httpx.AsyncClient(base_url=live_url) as watcher,
            watcher.stream("GET", PODS, params={"watch": "true"}) as response,
        ):
            await take(lines(response), 1)
            assert await open_watches(http) == 1
        for _ in range(100):
            if await open_watches(http) == 0:
                break
            await asyncio.sleep(0.05)
        assert await open_watches(http) == 0
    for _ in range(100):
        if len(asyncio.all_tasks()) <= tasks_before:
            break
        await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) <= tasks_before


async def test_shutdown_ends_open_watches_cleanly(store: MemoryStore) -> None:
    ready = asyncio.Event()
    port = free_port()
    server = asyncio.create_task(serve_api(store, "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        http.stream("GET", PODS, params={"watch": "true"}) as response,
    ):
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(server, 10)
        # The body ends with its last chunk: no "incomplete chunked read" error.
        assert [line async for line in response.aiter_lines()] == []
