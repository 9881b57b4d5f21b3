"""The Agent runner with FakeDriver and the in-memory Envoy sink (no processes, no Envoy),
against a real API server in this event loop: it registers its Node, runs the pods bound to
it, routes a Service to the ready ones, and across a restart re-adopts running processes
without ever applying a table from half-filled caches; it stops orphans and, on a graceful
stop, every pod."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from agent_api import eventually, running_api

from shoal.agent.context import DriverChoice
from shoal.agent.drivers.base import TaskHandle
from shoal.agent.drivers.fake import FakeDriver
from shoal.agent.envoy import AppliedVersions, MemoryEnvoySink, RoutingTable
from shoal.agent.records import PodRecord
from shoal.agent.runner import Agent, agent_settings
from shoal.api.errors import NotFound
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.service import Service
from shoal.client import AsyncClient


@dataclass
class CountingSink(MemoryEnvoySink):
    """Remembers how many endpoints each applied table had."""

    sizes: list[int] = field(default_factory=list)

    async def apply(self, table: RoutingTable) -> AppliedVersions:
        self.sizes.append(sum(len(c.endpoints) for c in table.clusters))
        return await super().apply(table)


@dataclass
class Running:
    agent: Agent
    sink: CountingSink
    stop: asyncio.Event
    task: asyncio.Task[None]


async def start_agent(
    client: AsyncClient,
    data_dir: Path,
    driver: FakeDriver,
    *,
    stop_pods: bool = True,
    log_max_bytes: int | None = None,
) -> Running:
    sink = CountingSink()
    agent = Agent(
        client, server_url=client.base_url, node_name="n1", data_dir=data_dir,
        drivers=DriverChoice({"fake": driver}, lambda _pod: "fake"), sink=sink,
    )  # fmt: skip
    if log_max_bytes is not None:
        agent.log_max_bytes, agent.log_check_seconds = log_max_bytes, 0.05
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop, stop_pods=stop_pods))
    await asyncio.wait_for(agent.ready.wait(), 10)
    return Running(agent, sink, stop, task)


async def halt(running: Running) -> None:
    running.stop.set()
    await asyncio.wait_for(running.task, 20)


async def create_pods(client: AsyncClient, count: int, node: str = "n1") -> None:
    await client.create(
        Service.new("web", spec={"selector": {"app": "web"}, "port": 18080, "targetPort": "http"})
    )
    for index in range(count):
        pod: Pod = Pod.new(
            f"web-{index}",
            spec={"command": ["serve"], "ports": [{"name": "http"}], "nodeName": node},
        )
        pod.metadata.labels = {"app": "web"}
        await client.create(pod)


async def all_ready(client: AsyncClient, count: int) -> bool:
    pods = (await client.list(Pod, "default")).items
    return len(pods) == count and all(p.status.ready for p in pods)


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with running_api() as api:
        yield api


async def test_runs_bound_pods_routes_them_and_stops_all_on_a_graceful_stop(
    client: AsyncClient, tmp_path: Path
) -> None:
    driver = FakeDriver()
    running = await start_agent(client, tmp_path, driver)
    node = await client.get(Node, "n1")
    assert node.status.conditions[0].type == "Ready"
    await create_pods(client, 2)
    await create_pods_elsewhere(client)
    await eventually(lambda: all_ready_on(client, 2))
    await eventually(lambda: running.sink.sizes[-1] == 2)  # both pods are in Envoy

    async def endpoints_ready() -> bool:
        service = await client.get(Service, "web")
        return [e.ready for e in service.status.endpoints] == [True, True]

    await eventually(endpoints_ready)
    assert len(driver.alive) == 2, "the pod bound to another node is not ours"
    await halt(running)
    assert not driver.alive, "a graceful stop stops every pod"
    assert running.agent.context.records.all() == []


async def create_pods_elsewhere(client: AsyncClient) -> None:
    other: Pod = Pod.new("elsewhere", spec={"command": ["serve"], "nodeName": "n2"})
    await client.create(other)


async def all_ready_on(client: AsyncClient, count: int) -> bool:
    pods = [p for p in (await client.list(Pod, "default")).items if p.spec.node_name == "n1"]
    return len(pods) == count and all(p.status.ready for p in pods)


async def test_a_restarted_agent_readopts_and_never_applies_a_partial_table(
    client: AsyncClient, tmp_path: Path
) -> None:
    driver = FakeDriver()
    first = await start_agent(client, tmp_path, driver, stop_pods=False)
    await create_pods(client, 3)
    await eventually(lambda: all_ready(client, 3))
    pids = {p.status.pid for p in (await client.list(Pod, "default")).items}
    await halt(first)  # steps away as after kill -9: processes keep running
    assert driver.alive == pids

    second = await start_agent(client, tmp_path, driver)
    await eventually(lambda: len([c for c in driver.calls if c[0] == "recover"]) == 3)
    await asyncio.sleep(0.2)
    assert len([c for c in driver.calls if c[0] == "start"]) == 3, "no new starts"
    assert second.sink.sizes and min(second.sink.sizes) == 3, "never fewer endpoints"
    after = (await client.list(Pod, "default")).items
    assert {p.status.pid for p in after} == pids
    assert all(p.status.ready and p.status.restart_count == 0 for p in after)
    await halt(second)


async def test_a_process_whose_pod_was_deleted_meanwhile_is_stopped(
    client: AsyncClient, tmp_path: Path
) -> None:
    driver = FakeDriver()
    driver.alive.add(4321)
    orphan = TaskHandle("fake", "gone-uid", 4321, 4321, 1.0, 1.0)
    first = await start_agent(client, tmp_path, driver)
    await halt(first)
    first.agent.context.records.save(PodRecord("gone-uid", "default", "gone", {}, orphan))
    second = await start_agent(client, tmp_path, driver)
    assert ("stop", (4321, 5.0)) in driver.calls
    assert 4321 not in driver.alive and second.agent.context.records.all() == []
    await halt(second)


async def test_a_deleted_pod_is_drained_stopped_and_released(
    client: AsyncClient, tmp_path: Path
) -> None:
    driver = FakeDriver()
    running = await start_agent(client, tmp_path, driver)
    await create_pods(client, 2)
    await eventually(lambda: all_ready(client, 2))
    await client.delete(Pod, "web-0")

    async def gone() -> bool:
        try:
            await client.get(Pod, "web-0")
        except NotFound:
            return True
        return False

    await eventually(gone)
    await eventually(lambda: running.sink.sizes[-1] == 1)
    assert len(driver.alive) == 1
    await halt(running)


async def test_a_pod_log_that_outgrows_its_limit_is_rotated(
    client: AsyncClient, tmp_path: Path
) -> None:
    running = await start_agent(client, tmp_path, FakeDriver(), log_max_bytes=100)
    await create_pods(client, 1)
    await eventually(lambda: all_ready(client, 1))
    (worker,) = running.agent.workers.values()
    worker.logs.current.write_bytes(b"x" * 150)  # what the process wrote
    await eventually(lambda: worker.logs.current.stat().st_size == 0)
    assert (worker.logs.directory / "current.log.1").read_bytes() == b"x" * 150
    await halt(running)


def test_the_envoy_admin_port_is_kept_across_restarts(tmp_path: Path) -> None:
    first = agent_settings(tmp_path)
    assert agent_settings(tmp_path) == first
