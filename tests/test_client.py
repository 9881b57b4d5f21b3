"""The typed client against a real API server (uvicorn on a free 127.0.0.1 port, in this
event loop; the sync client runs in a worker thread so the loop keeps serving)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from shoal.api.deployment import Deployment
from shoal.api.errors import AlreadyExists, Conflict, Gone, Invalid, NotFound, Unavailable
from shoal.api.node import Node
from shoal.api.pod import Pod, PodSpec
from shoal.client import AsyncClient, Client, TypedEvent
from shoal.server.app import create_app
from shoal.server.serve import serve_app
from shoal.store.memory import MemoryStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, FastAPI]]:
    """The API's URL and its app (for clients in the server's process)."""
    ready = asyncio.Event()
    port = free_port()
    app = create_app(MemoryStore(history_limit=20))
    task = asyncio.create_task(serve_app(app, "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    yield f"http://127.0.0.1:{port}", app
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


@pytest.fixture
def url(served: tuple[str, FastAPI]) -> str:
    return served[0]


@pytest.fixture(params=["http", "in-process"])
async def client(
    request: pytest.FixtureRequest, served: tuple[str, FastAPI]
) -> AsyncIterator[AsyncClient]:
    """Every AsyncClient test runs over HTTP and as the server's own components use it (calls
    handed to the app, watches over HTTP)."""
    url, app = served
    async with AsyncClient(url, app=app if request.param == "in-process" else None) as api:
        yield api


def new_pod(name: str, **labels: str) -> Pod:
    pod: Pod = Pod.new(name, spec=PodSpec(command=["sleep", "60"]))
    pod.metadata.labels = labels
    return pod


async def test_typed_crud(client: AsyncClient) -> None:
    created = await client.create(new_pod("a", app="web"))
    assert isinstance(created, Pod) and created.metadata.uid
    got = await client.get(Pod, "a")
    assert got.metadata.resource_version == created.metadata.resource_version
    got.spec.args = ["x"]
    updated = await client.update(got)
    assert updated.spec.args == ["x"]
    with pytest.raises(Conflict):
        await client.update(got)  # stale resourceVersion
    updated.status.phase = "Running"
    assert (await client.update_status(updated)).status.phase == "Running"
    listed = await client.list(Pod, selector="app=web")
    assert [p.metadata.name for p in listed.items] == ["a"] and listed.revision > 0
    await client.delete(Pod, "a")
    with pytest.raises(NotFound):
        await client.get(Pod, "a")


async def test_errors_are_typed(client: AsyncClient) -> None:
    await client.create(new_pod("a"))
    with pytest.raises(AlreadyExists):
        await client.create(new_pod("a"))
    bad = {"kind": "Pod", "metadata": {"name": "b"}, "spec": {"command": []}}
    with pytest.raises(Invalid) as caught:
        await client.apply(bad)
    assert [c.field for c in caught.value.causes] == ["items[0].spec.command"]


async def test_cluster_scoped_ignores_namespace(client: AsyncClient) -> None:
    await client.create(Node.new("n1"))
    assert (await client.get(Node, "n1", namespace="anything")).metadata.namespace is None
    assert [n.metadata.name for n in (await client.list(Node, namespace="x")).items] == ["n1"]


async def test_apply_and_dry_run(client: AsyncClient) -> None:
    doc = {
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"command": ["x"]}},
        },
    }
    assert (await client.apply_all([doc], dry_run=True))[0].action == "created"
    assert (await client.list(Deployment)).items == []
    assert (await client.apply(doc)).action == "created"
    assert (await client.apply(doc)).action == "unchanged"
    assert (await client.request_json("GET", "/version"))["apiVersion"] == "shoal/v1"


async def test_watch_yields_typed_events_and_gone(client: AsyncClient) -> None:
    first = await client.create(new_pod("a"))
    events: list[TypedEvent[Pod]] = []

    async def consume() -> None:
        async for event in client.watch(Pod, namespace="default"):
            events.append(event)
            if len(events) == 2:
                return

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    await client.create(new_pod("b"))
    await asyncio.wait_for(consumer, 10)
    assert [(e.type, e.object.metadata.name) for e in events] == [("ADDED", "a"), ("ADDED", "b")]
    assert isinstance(events[1].object, Pod) and events[1].revision > events[0].revision
    for index in range(30):  # the fixture store keeps 20 changes
        await client.create(new_pod(f"p{index}"))
    with pytest.raises(Gone):
        async for _ in client.watch(Pod, since=int(first.metadata.resource_version or 1)):
            pass


async def test_sync_client_same_interface(url: str) -> None:
    def scenario() -> list[str]:
        with Client(url) as sync:
            sync.create(new_pod("s"))
            pod = sync.get(Pod, "s")
            pod.metadata.labels = {"v": "2"}
            sync.update(pod)
            with pytest.raises(Conflict):
                sync.update(pod)
            seen = []
            for event in sync.watch(Pod, selector="v=2"):
                seen.append(f"{event.type} {event.object.metadata.name}")
                break
            sync.delete(Pod, "s", force=True)
            return seen

    assert await asyncio.to_thread(scenario) == ["ADDED s"]


async def test_unreachable_server_is_unavailable() -> None:
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", timeout=2) as api:
        with pytest.raises(Unavailable):
            await api.list(Pod)


async def test_in_process_calls_reach_the_app_without_a_socket() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with AsyncClient(nowhere, timeout=2, app=create_app(MemoryStore())) as api:
        created = await api.create(new_pod("a"))
        assert (await api.get(Pod, "a")).metadata.uid == created.metadata.uid
        with pytest.raises(Invalid):
            await api.apply({"kind": "Pod", "metadata": {"name": "b"}, "spec": {"command": []}})
        with pytest.raises(Unavailable):  # watches stream over HTTP
            async for _event in api.watch(Pod):
                break
