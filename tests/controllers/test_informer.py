"""The informer against a real API server: initial list, watch events, owner index,
write-through, and recovery when the server goes away and its history moves past us (Gone →
re-list, with handlers told about what changed meanwhile)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from shoal.api.meta import OwnerReference
from shoal.api.pod import Pod, PodSpec
from shoal.client import AsyncClient
from shoal.controllers.informer import EventKind, Informer
from shoal.server.serve import serve_api
from shoal.store.memory import MemoryStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_pod(name: str, owner_uid: str | None = None) -> Pod:
    pod: Pod = Pod.new(name, spec=PodSpec(command=["sleep", "60"]))
    if owner_uid:
        pod.metadata.owner_references = [
            OwnerReference(kind="ReplicaSet", name="rs", uid=owner_uid, controller=True)
        ]
    return pod


def raw_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"command": ["sleep", "60"]},
    }


async def until(check: Any, what: str) -> None:
    for _ in range(400):
        if check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


async def start(store: MemoryStore, port: int) -> asyncio.Task[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(serve_api(store, "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    return task


async def stop_server(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_list_watch_index_and_recovery_after_gone() -> None:
    store = MemoryStore(history_limit=3)
    port = free_port()
    server = await start(store, port)
    seen: list[tuple[EventKind, str]] = []
    stop = asyncio.Event()
    async with AsyncClient(f"http://127.0.0.1:{port}") as api:
        await api.create(new_pod("before", owner_uid="rs-1"))
        informer = Informer(api, Pod, max_backoff=0.2)
        informer.add_handler(lambda kind, pod: seen.append((kind, pod.metadata.name)))
        running = asyncio.create_task(informer.run(stop))
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert seen == [("ADDED", "before")]
        assert [p.metadata.name for p in informer.owned_by("rs-1")] == ["before"]

        created = await api.create(new_pod("during"))
        informer.remember(created)  # write-through: visible before the watch delivers it
        assert informer.get("default", "during") is not None
        await until(lambda: ("ADDED", "during") in seen, "the watch event of our own write")

        await api.delete(Pod, "before")
        await until(lambda: ("DELETED", "before") in seen, "a DELETED event")
        assert informer.owned_by("rs-1") == []

        # The server goes away; meanwhile more changes than its history keeps.
        await stop_server(server)
        for i in range(6):
            await store.create(raw_pod(f"offline-{i}"))
        await store.delete("Pod", "default", "during")
        server = await start(store, port)
        await until(lambda: informer.get("default", "offline-5") is not None, "the re-list")
        assert informer.get("default", "during") is None
        assert ("DELETED", "during") in seen
        assert {f"offline-{i}" for i in range(6)} <= {p.metadata.name for p in informer.items()}

        await api.create(new_pod("after"))
        await until(lambda: ("ADDED", "after") in seen, "watching again after the re-list")
        stop.set()
        await asyncio.wait_for(running, 10)
    await stop_server(server)


async def test_stale_event_after_our_delete_does_not_resurrect() -> None:
    port = free_port()
    server = await start(MemoryStore(), port)
    async with AsyncClient(f"http://127.0.0.1:{port}") as api:
        informer = Informer(api, Pod)
        pod = await api.create(new_pod("a"))
        informer.remember(pod)
        informer.deleted(pod)
        informer._apply("MODIFIED", pod)  # a late event from before our delete
        assert informer.get("default", "a") is None
        terminating = pod.model_copy(deep=True)
        terminating.metadata.deletion_timestamp = pod.metadata.creation_timestamp
        terminating.metadata.resource_version = str(int(pod.metadata.resource_version or 0) + 1)
        informer._apply("MODIFIED", terminating)  # finalizers keep it: that one is news
        assert informer.get("default", "a") is not None
    await stop_server(server)
