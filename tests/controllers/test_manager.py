"""The controllers end to end against a real API server (uvicorn on a free 127.0.0.1 port in
this event loop, in-memory store) through the real client. The node agent is simulated the
way the acceptance asks: the test marks pods ready through the status API."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shoal.api.deployment import REVISION_ANNOTATION, Deployment
from shoal.api.errors import Conflict, NotFound
from shoal.api.event import Event
from shoal.api.meta import Condition, find_condition, set_condition
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet
from shoal.client import AsyncClient
from shoal.controllers.manager import run_controllers
from shoal.controllers.rollback import rollback_deployment
from shoal.server.serve import serve_api
from shoal.store.memory import MemoryStore

TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    ready = asyncio.Event()
    port = free_port()
    server = asyncio.create_task(serve_api(MemoryStore(), "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    stop = asyncio.Event()
    async with (
        AsyncClient(f"http://127.0.0.1:{port}") as api,
        AsyncClient(f"http://127.0.0.1:{port}") as controllers_api,
    ):
        controllers = asyncio.create_task(run_controllers(controllers_api, stop=stop))
        yield api
        stop.set()
        await asyncio.wait_for(controllers, 10)
    server.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(server, 10)


def manifest(replicas: int = 3, version: str = "v1", **strategy: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"command": ["serve", version]},
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": strategy or {"maxSurge": 1, "maxUnavailable": 0},
            },
        },
    }


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def pods(api: AsyncClient) -> list[Pod]:
    return [
        p for p in (await api.list(Pod, "default")).items if p.metadata.deletion_timestamp is None
    ]


async def replica_sets(api: AsyncClient) -> list[ReplicaSet]:
    return (await api.list(ReplicaSet, "default")).items


async def mark_ready(api: AsyncClient, pod: Pod) -> None:
    """What the agent does once a pod's readiness probe passes (re-read on Conflict)."""
    for _ in range(10):
        now = datetime.now(UTC)
        pod.status.phase = "Running"
        pod.status.ready = True
        pod.status.conditions = set_condition(
            pod.status.conditions, Condition(type="Ready", status="True"), now
        )
        try:
            await api.update_status(pod)
            return
        except Conflict:
            pod = await api.get(Pod, pod.metadata.name)
        except NotFound:
            return
    raise AssertionError("could not mark the pod ready")


async def edit_pod(api: AsyncClient, name: str, change: Callable[[Pod], None]) -> Pod:
    """Read-modify-write with retries: controllers write the same pods concurrently."""
    for _ in range(10):
        pod = await api.get(Pod, name)
        change(pod)
        try:
            return await api.update(pod)
        except Conflict:
            continue
    raise AssertionError(f"could not update pod {name}")


def set_finalizers(*names: str) -> Callable[[Pod], None]:
    def change(pod: Pod) -> None:
        pod.metadata.finalizers = list(names)

    return change


async def ready_all(api: AsyncClient) -> int:
    count = 0
    for pod in await pods(api):
        if not pod.status.ready:
            await mark_ready(api, pod)
            count += 1
    return count


async def register_node(api: AsyncClient, name: str = "node-1") -> None:
    node: Node = Node.new(name, namespace=None)
    node.status.allocatable.cpu = "4"
    node.status.allocatable.memory = "8Gi"
    created = await api.create(node)
    created.status = node.status
    created.status.conditions = [Condition(type="Ready", status="True")]
    await api.update_status(created)


async def test_deployment_scale_rollout_and_delete(client: AsyncClient) -> None:
    api = client
    await api.apply(manifest(3))

    async def three_pods() -> bool:
        return len(await pods(api)) == 3 and len(await replica_sets(api)) == 1

    await eventually(three_pods, "1 ReplicaSet and 3 pods")
    (rs,) = await replica_sets(api)
    for pod in await pods(api):
        assert pod.metadata.name.startswith(f"{rs.metadata.name}-")
        assert len(pod.metadata.name) == len(rs.metadata.name) + 6
        ref = pod.metadata.controller_ref()
        assert ref is not None and ref.uid == rs.metadata.uid
        assert pod.metadata.labels["pod-template-hash"] == rs.metadata.labels["pod-template-hash"]

    await api.apply(manifest(5))

    async def five_pods() -> bool:
        return len(await pods(api)) == 5

    await eventually(five_pods, "5 pods")
    await ready_all(api)

    async def available() -> bool:
        d = await api.get(Deployment, "web")
        return d.status.available_replicas == 5 and d.status.updated_replicas == 5

    await eventually(available, "5 available replicas")

    # Template change: maxSurge 1, maxUnavailable 0 → never more than 6 pods, never fewer
    # than 5 ready ones; pods move as the test marks new ones ready.
    await api.apply(manifest(5, version="v2"))
    most = 0
    fewest_ready = 5

    async def rolled() -> bool:
        nonlocal most, fewest_ready
        current = await pods(api)
        most = max(most, len(current))
        fewest_ready = min(fewest_ready, sum(p.status.ready for p in current))
        await ready_all(api)
        d = await api.get(Deployment, "web")
        sets = await replica_sets(api)
        return (
            len(sets) == 2
            and d.status.updated_replicas == 5
            and d.status.available_replicas == 5
            and d.status.replicas == 5
        )

    await eventually(rolled, "the rollout to v2")
    assert most <= 6 and fewest_ready >= 5
    d = await api.get(Deployment, "web")
    assert d.status.current_revision == 2
    progressing = find_condition(d.status.conditions, "Progressing")
    assert progressing is not None and progressing.reason == "NewReplicaSetAvailable"
    sets = await replica_sets(api)
    revisions = sorted(rs.metadata.annotations[REVISION_ANNOTATION] for rs in sets)
    assert revisions == ["1", "2"]

    async def events_recorded() -> bool:
        reasons = {e.reason for e in (await api.list(Event, "default")).items}
        return {"ScalingReplicaSet", "SuccessfulCreate", "SuccessfulDelete"} <= reasons

    await eventually(events_recorded, "events")

    # Rollback to revision 1: its ReplicaSet becomes the new one, revision 3.
    await rollback_deployment(api, "default", "web")

    async def rolled_back() -> bool:
        await ready_all(api)
        d = await api.get(Deployment, "web")
        return (
            d.status.current_revision == 3
            and d.status.available_replicas == 5
            and (d.status.updated_replicas == 5 and d.status.replicas == 5)
        )

    await eventually(rolled_back, "the rollback")
    assert len(await replica_sets(api)) == 2
    reasons = {e.reason for e in (await api.list(Event, "default")).items}
    assert "DeploymentRollback" in reasons
    assert (await api.get(Deployment, "web")).spec.template.spec.command == ["serve", "v1"]

    await api.delete(Deployment, "web")

    async def all_gone() -> bool:
        return not (await api.list(Pod, "default")).items and not await replica_sets(api)

    await eventually(all_gone, "ReplicaSets and pods to be garbage collected")


async def test_pod_with_finalizer_stops_gracefully(client: AsyncClient) -> None:
    api = client
    await api.apply(manifest(2))

    async def two_pods() -> bool:
        return len(await pods(api)) == 2

    await eventually(two_pods, "2 pods")
    held = await edit_pod(
        api, (await pods(api))[0].metadata.name, set_finalizers("shoal.dev/process")
    )
    await api.apply(manifest(1))

    async def one_left() -> bool:
        return len(await pods(api)) == 1

    await eventually(one_left, "scale down to 1")
    everything = (await api.list(Pod, "default")).items
    terminating = [p for p in everything if p.metadata.deletion_timestamp is not None]
    if terminating:  # the pod with the finalizer was chosen: it waits for its finalizer
        (stopping,) = terminating
        assert stopping.metadata.name == held.metadata.name
        await asyncio.sleep(0.3)
        assert len(await pods(api)) == 1  # not replaced twice, still there
        await edit_pod(api, stopping.metadata.name, set_finalizers())
    await api.delete(Deployment, "web")

    async def gone_but_held() -> bool:
        left = (await api.list(Pod, "default")).items
        return not await replica_sets(api) and all(
            p.metadata.deletion_timestamp is not None for p in left
        )

    await eventually(gone_but_held, "cascading delete")
    for pod in (await api.list(Pod, "default")).items:
        assert pod.metadata.finalizers == ["shoal.dev/process"]
        await edit_pod(api, pod.metadata.name, set_finalizers())

    async def empty() -> bool:
        return not (await api.list(Pod, "default")).items

    await eventually(empty, "the finalized pod to go")
    with pytest.raises(NotFound):
        await api.get(Pod, held.metadata.name)


async def test_scheduler_binds_pods_to_a_ready_node(client: AsyncClient) -> None:
    api = client
    await api.apply(manifest(2))

    async def unschedulable() -> bool:
        current = await pods(api)
        conditions = [find_condition(p.status.conditions, "PodScheduled") for p in current]
        return len(current) == 2 and all(c is not None and c.status == "False" for c in conditions)

    await eventually(unschedulable, "PodScheduled=False without nodes")
    events = (await api.list(Event, "default")).items
    assert any(e.reason == "FailedScheduling" and "0/0 nodes" in e.message for e in events)
    await register_node(api)

    async def bound() -> bool:
        current = await pods(api)
        return len(current) == 2 and all(
            p.spec.node_name == "node-1"
            and (c := find_condition(p.status.conditions, "PodScheduled")) is not None
            and c.status == "True"
            for p in current
        )

    await eventually(bound, "pods bound to node-1")


async def test_recreate_stops_every_old_pod_before_starting_new_ones(client: AsyncClient) -> None:
    api = client
    doc = manifest(3)
    doc["spec"]["strategy"] = {"type": "Recreate"}
    await api.apply(doc)

    async def three_pods() -> bool:
        return len(await pods(api)) == 3

    await eventually(three_pods, "3 pods")
    await ready_all(api)
    old_hash = (await pods(api))[0].metadata.labels["pod-template-hash"]
    doc["spec"]["template"]["spec"]["command"] = ["serve", "v2"]
    await api.apply(doc)
    mixed = False

    async def recreated() -> bool:
        nonlocal mixed
        hashes = {p.metadata.labels["pod-template-hash"] for p in (await api.list(Pod)).items}
        mixed = mixed or len(hashes) > 1
        current = await pods(api)
        return len(current) == 3 and old_hash not in hashes

    await eventually(recreated, "3 new pods")
    assert not mixed  # never old and new pods at once


async def test_orphans_of_a_vanished_owner_are_collected(client: AsyncClient) -> None:
    api = client
    orphan: Pod = Pod.from_json(
        {
            "kind": "Pod",
            "metadata": {
                "name": "orphan",
                "ownerReferences": [
                    {"kind": "ReplicaSet", "name": "gone", "uid": "no-such-uid", "controller": True}
                ],
            },
            "spec": {"command": ["x"]},
        }
    )
    loner: Pod = Pod.from_json(
        {"kind": "Pod", "metadata": {"name": "loner"}, "spec": {"command": ["x"]}}
    )
    await api.create(orphan)
    await api.create(loner)

    async def orphan_gone() -> bool:
        names = {p.metadata.name for p in (await api.list(Pod)).items}
        return "orphan" not in names

    await eventually(orphan_gone, "the orphan to be collected")
    assert (await api.get(Pod, "loner")).metadata.name == "loner"  # no owner: left alone


async def test_owner_recreated_under_the_same_name(client: AsyncClient) -> None:
    """Dependents follow the owner's uid, not its name: the old generation is collected."""
    api = client
    await api.apply(manifest(2))

    async def two_pods() -> bool:
        return len(await pods(api)) == 2

    await eventually(two_pods, "2 pods")
    first_uid = (await api.get(Deployment, "web")).metadata.uid
    await api.delete(Deployment, "web")
    await api.apply(manifest(2))
    second_uid = (await api.get(Deployment, "web")).metadata.uid
    assert first_uid != second_uid

    async def only_new_generation() -> bool:
        sets = await replica_sets(api)
        owners = {ref.uid for rs in sets if (ref := rs.metadata.controller_ref()) is not None}
        current = await pods(api)
        rs_uids = {rs.metadata.uid for rs in sets}
        return (
            owners == {second_uid}
            and len(current) == 2
            and all(
                (ref := p.metadata.controller_ref()) is not None and ref.uid in rs_uids
                for p in current
            )
        )

    await eventually(only_new_generation, "only the new deployment's objects")
