"""PodWorker's state machine with FakeDriver (scripted processes) and the in-memory Envoy sink,
against a real API server in this event loop: start, Ready only after Envoy confirmed,
exits and back-off, start failures, terminal phases, re-adoption, and the stop path's order
(draining in Envoy, in-flight requests done, then the process stopped, then the finalizer)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from agent_api import eventually, running_api

from shoal.agent.context import AgentContext, DriverChoice
from shoal.agent.dataplane import DataPlane
from shoal.agent.drivers.base import ExitStatus, StartError, TaskHandle
from shoal.agent.drivers.fake import FakeDriver
from shoal.agent.envoy import AppliedVersions, MemoryEnvoySink, RoutingTable
from shoal.agent.ports import PortAllocator
from shoal.agent.records import PodRecord, PodRecords
from shoal.agent.routing import build_routing
from shoal.agent.worker import FINALIZER, PodWorker
from shoal.api.errors import NotFound
from shoal.api.pod import Pod
from shoal.api.service import Service
from shoal.client import AsyncClient
from shoal.controllers.informer import EventKind, Informer
from shoal.events import EventRecorder


class LoggingDriver(FakeDriver):
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.log = log

    async def stop(self, handle: TaskHandle, grace_seconds: float) -> ExitStatus:
        self.log.append(("stop", handle.pid))
        return await super().stop(handle, grace_seconds)


@dataclass
class LoggingSink(MemoryEnvoySink):
    log: list[tuple[str, Any]] = field(default_factory=list)

    async def apply(self, table: RoutingTable) -> AppliedVersions:
        endpoints = {e.port: e.draining for c in table.clusters for e in c.endpoints}
        self.log.append(("envoy", endpoints))
        return await super().apply(table)

    async def wait_drained(self, cluster: str, host: str, port: int, timeout_s: float) -> bool:
        while self.in_flight.get((cluster, host, port), 0):  # noqa: ASYNC110 - as rq_active is polled
            await asyncio.sleep(0.01)
        self.log.append(("drained", port))
        return True


@dataclass
class Rig:
    client: AsyncClient
    ctx: AgentContext
    driver: LoggingDriver
    sink: LoggingSink
    log: list[tuple[str, Any]]
    workers: dict[str, PodWorker] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def create(self, name: str, *, service: bool = False, **spec: Any) -> Pod:
        body = {"command": ["serve"], "ports": [{"name": "http"}], "nodeName": "n1", **spec}
        new: Pod = Pod.new(name, spec=body)
        new.metadata.labels = {"app": name}
        pod = await self.client.create(new)
        if service:
            selector = {"app": name}
            svc = Service.new(
                name, spec={"selector": selector, "port": 18080, "targetPort": "http"}
            )
            await self.client.create(svc)
            await eventually(lambda: self.ctx.services.get("default", name) is not None)
        return pod

    def run(self, pod: Pod) -> PodWorker:
        worker = PodWorker(self.ctx, pod)
        self.workers[pod.metadata.uid or ""] = worker
        self.tasks.append(asyncio.create_task(worker.run()))
        return worker

    async def pod(self, name: str) -> Pod:
        return await self.client.get(Pod, name)

    async def ready(self, name: str) -> bool:
        return (await self.pod(name)).status.ready


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_api() as client:
        log: list[tuple[str, Any]] = []
        pods: Informer[Pod] = Informer(client, Pod)
        services: Informer[Service] = Informer(client, Service)
        sink = LoggingSink(log=log)
        ready: set[str] = set()  # the context's locally_ready, shared with the routing
        dataplane = DataPlane(
            sink, lambda: build_routing(services.items(), pods.items(), {}, locally_ready=ready)
        )
        driver = LoggingDriver(log)
        ctx = AgentContext(
            client=client, node_name="n1", server_url="http://api", data_dir=tmp_path,
            dataplane=dataplane, drivers=DriverChoice({"fake": driver}, lambda _pod: "fake"),
            ports=PortAllocator(is_free=lambda _port: True), records=PodRecords(tmp_path / "r"),
            recorder=EventRecorder(client, "agent"), pods=pods, services=services,
            routing_changed=dataplane.invalidate, drain_timeout=5.0, locally_ready=ready,
        )  # fmt: skip
        rig = Rig(client, ctx, driver, sink, log)

        def feed(kind: EventKind, pod: Pod) -> None:
            dataplane.invalidate()
            worker = rig.workers.get(pod.metadata.uid or "")
            if worker is not None:
                worker.vanish() if kind == "DELETED" else worker.update(pod)

        pods.add_handler(feed)
        services.add_handler(lambda _kind, _svc: dataplane.invalidate())
        stop = asyncio.Event()
        background = [
            asyncio.create_task(pods.run(stop)),
            asyncio.create_task(services.run(stop)),
            asyncio.create_task(dataplane.run(stop)),
        ]
        await pods.synced.wait()
        await services.synced.wait()
        yield rig
        for task in rig.tasks:
            task.cancel()
        stop.set()
        await asyncio.gather(*rig.tasks, *background, return_exceptions=True)


async def test_a_pod_starts_with_our_finalizer_ports_and_gets_ready(rig: Rig) -> None:
    pod = await rig.create("web")
    rig.run(pod)

    await eventually(lambda: rig.ready("web"))
    current = await rig.pod("web")
    assert FINALIZER in current.metadata.finalizers
    (start,) = [c for c in rig.driver.calls if c[0] == "start"]
    spec = start[1]
    assert current.status.pid in rig.driver.alive
    assert spec.ports == {"http": current.status.host_port}  # type: ignore[attr-defined]
    assert spec.env["SHOAL_SERVER"] == "http://api"  # type: ignore[attr-defined]
    record = rig.ctx.records.load(current.metadata.uid or "")
    assert record is not None and record.handle is not None
    assert record.handle.pid == current.status.pid


async def test_ready_waits_for_envoy_and_deletion_drains_before_stopping(rig: Rig) -> None:
    pod = await rig.create("web", service=True)
    rig.run(pod)

    async def ready() -> Pod | None:
        current = await rig.pod("web")
        return current if current.status.ready else None

    await eventually(ready)
    current = await rig.pod("web")
    port = current.status.host_port
    assert port is not None
    confirmed = [i for i, e in enumerate(rig.log) if e == ("envoy", {port: False})]
    assert confirmed, f"Ready only after Envoy listed the pod: {rig.log} {port}"
    rig.sink.in_flight[("default.web.all", "127.0.0.1", port)] = 1
    await rig.client.delete(Pod, "web")
    await eventually(lambda: ("envoy", {port: True}) in rig.log)
    await asyncio.sleep(0.1)
    assert not any(e[0] == "stop" for e in rig.log), "requests are still in flight"
    rig.sink.in_flight.clear()

    async def gone() -> bool:
        try:
            await rig.pod("web")
        except NotFound:
            return True
        return False

    await eventually(gone)
    order = [e[0] for e in rig.log if e[0] in ("drained", "stop")]
    assert order[:2] == ["drained", "stop"]
    draining = rig.log.index(("envoy", {port: True}))
    stopped = rig.log.index(("stop", current.status.pid))
    assert draining < stopped
    assert rig.ctx.records.load(current.metadata.uid or "") is None


async def test_an_exit_backs_off_restarts_and_counts(rig: Rig) -> None:
    pod = await rig.create("web")
    rig.run(pod)
    await eventually(lambda: rig.driver.alive)
    (pid,) = rig.driver.alive
    handle = TaskHandle("fake", pod.metadata.uid or "", pid, pid, 0, 0)
    rig.driver.exit(handle, code=None, signal=signal.SIGKILL)

    async def backing_off() -> bool:
        return (await rig.pod("web")).status.reason == "CrashLoopBackOff"

    await eventually(backing_off)
    await eventually(lambda: len([c for c in rig.driver.calls if c[0] == "start"]) == 2)

    async def restarted() -> Pod | None:
        current = await rig.pod("web")
        return current if current.status.ready and current.status.restart_count == 1 else None

    await eventually(restarted)
    current = await rig.pod("web")
    assert current.status.last_state is not None
    assert current.status.last_state.signal == signal.SIGKILL
    assert current.status.reason is None and current.status.pid != pid


async def test_a_restart_that_dies_at_once_is_never_routed_and_costs_one_write(rig: Rig) -> None:
    versions: list[tuple[int, bool]] = []  # every version of the pod the API sent
    rig.ctx.pods.add_handler(
        lambda _kind, pod: versions.append((pod.status.restart_count, pod.status.ready))
    )
    pod = await rig.create("web", service=True)
    rig.run(pod)
    await eventually(lambda: rig.ready("web"))
    port = (await rig.pod("web")).status.host_port
    uid = pod.metadata.uid or ""

    def starts() -> int:
        return len([c for c in rig.driver.calls if c[0] == "start"])

    def crash() -> int:  # a run that lasted no time at all
        (pid,) = rig.driver.alive
        now = time.time()
        rig.driver.exit(TaskHandle("fake", uid, pid, pid, now, now), code=3)
        return pid

    crash()
    await eventually(lambda: starts() == 2)
    crashed_at_once = crash()  # well within RESTART_SETTLE_SECONDS of its start
    await eventually(lambda: starts() == 3)

    async def ready_again() -> bool:
        current = await rig.pod("web")
        return current.status.ready and current.status.restart_count == 2

    await eventually(ready_again)  # the third run lives: it settles, then it is Ready
    assert versions.count((1, False)) == 1, f"one write for the short run: {versions}"
    assert (1, True) not in versions
    routed = [i for i, e in enumerate(rig.log) if e == ("envoy", {port: False})]
    stopped = rig.log.index(("stop", crashed_at_once))
    assert len(routed) == 2 and routed[0] < stopped < routed[1], f"routed: {rig.log}"


async def test_a_start_failure_is_reported_and_retried(rig: Rig) -> None:
    rig.driver.fail_next_start = StartError("ExecutableNotFound", "serve: not found in PATH")
    rig.run(await rig.create("web"))

    async def failed() -> bool:
        current = await rig.pod("web")
        return current.status.reason == "ExecutableNotFound" and "back-off" in (
            current.status.message or ""
        )

    await eventually(failed)
    await eventually(lambda: rig.driver.alive, seconds=5)  # the next start works


async def test_restart_policy_never_ends_in_a_terminal_phase(rig: Rig) -> None:
    pod = await rig.create("job", restartPolicy="Never")
    rig.run(pod)
    await eventually(lambda: rig.driver.alive)
    (pid,) = rig.driver.alive
    rig.driver.exit(TaskHandle("fake", pod.metadata.uid or "", pid, pid, 0, 0), code=0)

    async def succeeded() -> bool:
        return (await rig.pod("job")).status.phase == "Succeeded"

    await eventually(succeeded)
    await asyncio.sleep(0.1)
    assert len([c for c in rig.driver.calls if c[0] == "start"]) == 1


async def test_a_recorded_live_process_is_adopted_not_started_again(rig: Rig) -> None:
    pod = await rig.create("web")
    uid = pod.metadata.uid or ""
    handle = TaskHandle("fake", uid, 777, 777, 1.0, 1.0)
    rig.driver.alive.add(777)
    rig.ctx.records.save(PodRecord(uid, "default", "web", {"http": 20001}, handle, 4))
    pod.status.pid, pod.status.restart_count, pod.status.host_port = 777, 4, 20001
    pod = await rig.client.update_status(pod)
    rig.run(pod)
    await eventually(lambda: ("recover", 777) in rig.driver.calls)

    await eventually(lambda: rig.ready("web"))
    current = await rig.pod("web")
    assert (current.status.pid, current.status.restart_count) == (777, 4)
    assert not [c for c in rig.driver.calls if c[0] == "start"]


async def test_an_adopted_process_whose_status_was_never_written_gets_it(rig: Rig) -> None:
    """The last agent died between starting the process and its (un-awaited) status write."""
    pod = await rig.create("web")
    uid = pod.metadata.uid or ""
    handle = TaskHandle("fake", uid, 778, 778, 1.0, 1.0)
    rig.driver.alive.add(778)
    rig.ctx.records.save(PodRecord(uid, "default", "web", {"http": 20002}, handle, 0))
    rig.run(pod)

    await eventually(lambda: rig.ready("web"))
    status = (await rig.pod("web")).status
    assert (status.phase, status.pid, status.host_port) == ("Running", 778, 20002)
    assert not [c for c in rig.driver.calls if c[0] == "start"]


async def test_a_recorded_process_that_died_meanwhile_is_recorded_and_restarted(rig: Rig) -> None:
    pod = await rig.create("web")
    uid = pod.metadata.uid or ""
    rig.ctx.records.save(PodRecord(uid, "default", "web", {}, TaskHandle("fake", uid, 5, 5, 1, 1)))
    rig.run(pod)

    async def restarted() -> Pod | None:
        current = await rig.pod("web")
        return current if current.status.restart_count == 1 and current.status.ready else None

    await eventually(restarted)
    current = await rig.pod("web")
    assert current.status.last_state is not None
    assert current.status.last_state.reason == "UnknownExit"


async def test_without_the_drain_the_process_is_stopped_with_requests_in_flight(rig: Rig) -> None:
    rig.ctx.drain_before_stop = False  # the test knob (SHOAL_TEST_SKIP_DRAIN)
    pod = await rig.create("web", service=True)
    rig.run(pod)

    await eventually(lambda: rig.ready("web"))
    port = (await rig.pod("web")).status.host_port
    assert port is not None
    rig.sink.in_flight[("default.web.all", "127.0.0.1", port)] = 1
    await rig.client.delete(Pod, "web")
    await eventually(lambda: any(e[0] == "stop" for e in rig.log))
    assert not any(e[0] == "drained" for e in rig.log)
