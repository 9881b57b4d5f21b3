"""Progressive rollouts through the real controllers and a real API server (in-memory store):
the analysis controller measures (exec provider), the deployment controller follows the
verdict, and a simulated agent marks pods ready and confirms routing in Node.status.traffic,
as the real one does after Envoy confirmed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shoal.api.analysis import AnalysisRun, AnalysisTemplate
from shoal.api.deployment import Deployment
from shoal.api.errors import Conflict
from shoal.api.event import Event
from shoal.api.meta import Condition, ObjectMeta, set_condition
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet
from shoal.api.rollout import ACTION_ANNOTATION, traffic_key
from shoal.client import AsyncClient
from shoal.controllers.manager import run_controllers
from shoal.server.serve import serve_api
from shoal.store.memory import MemoryStore

TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fake_agent(api: AsyncClient, stop: asyncio.Event) -> None:
    """Marks bound pods ready and confirms every progressive deployment's routing."""
    node = Node(kind="Node", metadata=ObjectMeta(name="n1", namespace=None))
    node = await api.create(node)
    while not stop.is_set():
        now = datetime.now(UTC)
        for pod in (await api.list(Pod, "default")).items:
            if pod.spec.node_name and not pod.status.ready and not pod.metadata.deletion_timestamp:
                pod.status.phase, pod.status.ready = "Running", True
                for type_ in ("Ready", "ContainersReady"):
                    pod.status.conditions = set_condition(
                        pod.status.conditions, Condition(type=type_, status="True"), now
                    )
                with contextlib.suppress(Conflict):
                    await api.update_status(pod)
        traffic = {
            traffic_key("default", d.metadata.name): d.status.rollout.traffic.version
            for d in (await api.list(Deployment, "default")).items
            if d.status.rollout is not None
        }
        node = await api.get(Node, "n1")
        ready = Condition(type="Ready", status="True")
        node.status.conditions = set_condition(node.status.conditions, ready, now)
        node.status.envoy_admin_port, node.status.last_heartbeat_time = 1, now
        node.status.traffic = traffic
        with contextlib.suppress(Conflict):
            await api.update_status(node)
        await asyncio.sleep(0.05)


@pytest.fixture
async def api() -> AsyncIterator[AsyncClient]:
    ready = asyncio.Event()
    port = free_port()
    server = asyncio.create_task(serve_api(MemoryStore(), "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    stop = asyncio.Event()
    url = f"http://127.0.0.1:{port}"
    async with AsyncClient(url) as client, AsyncClient(url) as controllers_api:
        controllers = asyncio.create_task(run_controllers(controllers_api, stop=stop))
        agent = asyncio.create_task(fake_agent(client, stop))
        yield client
        stop.set()
        await asyncio.wait_for(controllers, 10)
        agent.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await agent
    server.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(server, 10)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def exec_template(name: str, exit_code: int) -> AnalysisTemplate:
    script = f"import sys; print(0.{exit_code or 99}); sys.exit({exit_code})"
    return AnalysisTemplate.from_json(
        {
            "kind": "AnalysisTemplate",
            "metadata": {"name": name},
            "spec": {
                "metrics": [
                    {
                        "name": "smoke",
                        "interval": "0.2s",
                        "count": 2,
                        "provider": {"exec": {"command": [sys.executable, "-c", script]}},
                    }
                ]
            },
        }
    )


def canary(
    version: str, template: str, steps: list[dict[str, Any]] | None = None, **more: Any
) -> Deployment:
    return Deployment.from_json(
        {
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"command": ["serve", version]},
                },
                "strategy": {
                    "type": "Canary",
                    "canary": {
                        "steps": steps
                        or [
                            {"setWeight": 50},
                            {"analysis": {"templates": [{"templateName": template}]}},
                        ],
                        **more,
                    },
                },
            },
        }
    )


async def rollout_phase(api: AsyncClient) -> str | None:
    d = await api.get(Deployment, "web")
    return d.status.rollout.phase if d.status.rollout else None


async def update_template(api: AsyncClient, version: str) -> None:
    for _ in range(10):
        d = await api.get(Deployment, "web")
        d.spec.template.spec.command = ["serve", version]
        with contextlib.suppress(Conflict):
            await api.update(d)
            return


async def test_a_good_canary_is_measured_and_promoted(api: AsyncClient) -> None:
    await api.create(exec_template("smoke", 0))
    await api.create(canary("v1", "smoke"))

    async def healthy() -> bool:
        return await rollout_phase(api) == "Healthy"

    await eventually(healthy, "v1 healthy")
    await update_template(api, "v2")

    async def promoted() -> bool:
        d = await api.get(Deployment, "web")
        return (
            d.status.rollout is not None
            and d.status.rollout.stable_hash is not None
            and any(
                rs.spec.template.spec.command[1] == "v2"
                and rs.metadata.labels["pod-template-hash"] == d.status.rollout.stable_hash
                for rs in (await api.list(ReplicaSet, "default")).items
            )
            and d.status.rollout.phase == "Healthy"
        )

    await eventually(promoted, "v2 promoted")
    runs = (await api.list(AnalysisRun, "default")).items
    assert [r.status.phase for r in runs] == ["Successful"]
    measurements = runs[0].status.metric_results[0].measurements
    assert len(measurements) == 2
    assert all(m.phase == "Successful" for m in measurements)


async def test_a_failed_analysis_degrades_with_the_metric_and_reverts(api: AsyncClient) -> None:
    await api.create(exec_template("smoke", 3))
    await api.create(canary("v1", "smoke", autoRollback=True))

    async def healthy() -> bool:
        return await rollout_phase(api) == "Healthy"

    await eventually(healthy, "v1 healthy")
    await update_template(api, "v2")

    async def degraded() -> bool:
        return await rollout_phase(api) == "Degraded"

    await eventually(degraded, "the canary aborted")
    d = await api.get(Deployment, "web")
    assert d.status.rollout is not None
    reason = d.status.rollout.abort_reason or ""
    assert "smoke" in reason and "exitCode" in reason, reason

    async def reverted() -> bool:
        d = await api.get(Deployment, "web")
        sizes = {
            rs.spec.template.spec.command[1]: rs.spec.replicas
            for rs in (await api.list(ReplicaSet, "default")).items
        }
        return d.spec.template.spec.command == ["serve", "v1"] and sizes == {"v1": 2, "v2": 0}

    await eventually(reverted, "autoRollback to v1, canary scaled down")
    events = {e.reason for e in (await api.list(Event, "default")).items}
    assert {"RolloutAborted", "AutoRollback"} <= events


async def test_promote_through_the_action_annotation(api: AsyncClient) -> None:
    await api.create(exec_template("smoke", 0))
    await api.create(canary("v1", "smoke", steps=[{"setWeight": 50}, {"pause": {}}]))

    async def healthy() -> bool:
        return await rollout_phase(api) == "Healthy"

    await eventually(healthy, "v1 healthy")
    await update_template(api, "v2")

    async def paused() -> bool:
        return await rollout_phase(api) == "Paused"

    await eventually(paused, "paused at the pause step")
    for _ in range(10):
        current = await api.get(Deployment, "web")
        current.metadata.annotations[ACTION_ANNOTATION] = "promote 1"
        with contextlib.suppress(Conflict):
            await api.update(current)
            break
    await eventually(healthy, "promoted after promote")


async def test_finished_analysis_runs_beyond_the_history_limit_are_deleted(
    api: AsyncClient,
) -> None:
    await api.create(exec_template("smoke", 0))
    await api.create(canary("v1", "smoke", analysisRunHistoryLimit=2))

    async def healthy_at(version: str) -> bool:
        d = await api.get(Deployment, "web")
        rollout = d.status.rollout
        return (
            rollout is not None
            and rollout.phase == "Healthy"
            and rollout.new_hash is None
            and d.spec.template.spec.command[1] == version
            and d.status.observed_generation >= (d.metadata.generation or 0)
        )

    await eventually(lambda: healthy_at("v1"), "v1 healthy")
    created: list[str] = []
    for version in ("v2", "v3", "v4", "v5"):
        await update_template(api, version)
        await eventually(lambda v=version: healthy_at(v), f"{version} promoted")  # type: ignore[misc]
        created += [r.metadata.name for r in (await api.list(AnalysisRun, "default")).items]

    async def pruned() -> bool:
        return len((await api.list(AnalysisRun, "default")).items) == 2

    await eventually(pruned, "two runs left")
    runs = (await api.list(AnalysisRun, "default")).items
    assert len(set(created)) == 4, created  # every rollout had its run
    newest = sorted(set(created), key=created.index)[-2:]
    assert sorted(r.metadata.name for r in runs) == sorted(newest)
    assert all(r.status.phase == "Successful" for r in runs)
