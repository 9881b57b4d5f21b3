"""One pod's life on this node: start, probe, restart, and the graceful stop path.

The agent runner creates a `PodWorker` per pod bound to this node and feeds it every new
version of the pod. The worker owns the pod's status (the agent is its only writer).

    ┌──────── ensure finalizer ────────┐
    v                                  │
  START ──ok──> RUNNING ──exit / liveness kill──> BACKOFF ──delay──> START
    │ StartError ──────────────────────────────────^   │ policy says no: Succeeded / Failed
    │                                                   v
    └─────────── deletionTimestamp (from any state) ──> STOPPING:
         Envoy confirms the pod is draining -> in-flight requests reach 0 (bounded)
         -> preStop -> SIGTERM -> grace -> SIGKILL of the group -> finalizer removed

Ready has one meaning: the readiness probe passes AND Envoy confirmed it routes to the pod
(when a Service selects it). The Deployment controller therefore never drains an old pod
before its replacement takes traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from shoal.agent.dataplane import DataPlane
from shoal.agent.drivers.base import Driver, ExitStatus, ProcessSpec, StartError, TaskHandle
from shoal.agent.exec_action import ExecContext
from shoal.agent.lifecycle import stop_pod
from shoal.agent.logs import PodLogs
from shoal.agent.podprocess import (
    assign_ports,
    owner_name,
    pod_environment,
    pod_limits,
    port_names_to_allocate,
)
from shoal.agent.ports import PortAllocator, PortsExhaustedError
from shoal.agent.probe_checks import ProbeTarget
from shoal.agent.probes import PodProber, ProbeEvent
from shoal.agent.records import PodRecord, PodRecords
from shoal.agent.restarts import RestartHistory, next_restart
from shoal.agent.routing import is_selected
from shoal.api.errors import ApiError, Conflict, NotFound
from shoal.api.meta import Condition, set_condition
from shoal.api.pod import ContainerStateTerminated, Pod, PodStatus
from shoal.api.service import Service
from shoal.client import AsyncClient
from shoal.controllers.informer import Informer
from shoal.events import EventRecorder

log = logging.getLogger(__name__)

FINALIZER = "shoal.dev/process"
READY_CONFIRM_TIMEOUT = 30.0


class DriverChoice:
    """Which driver runs a pod: the protocol's implementations by name, and the rule."""

    def __init__(self, drivers: dict[str, Driver], choose: Callable[[Pod], str | StartError]):
        self.drivers = drivers
        self._choose = choose

    def for_pod(self, pod: Pod) -> Driver | StartError:
        name = self._choose(pod)
        return name if isinstance(name, StartError) else self.drivers[name]

    def by_name(self, name: str) -> Driver:
        return self.drivers[name]


@dataclass
class AgentContext:
    """What every pod worker shares; built by the agent runner."""

    client: AsyncClient
    node_name: str
    server_url: str
    data_dir: Path
    dataplane: DataPlane
    drivers: DriverChoice
    ports: PortAllocator
    records: PodRecords
    recorder: EventRecorder
    pods: Informer[Pod]
    services: Informer[Service]
    routing_changed: Callable[[], None]
    address: str = "127.0.0.1"
    drain_timeout: float = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


def _condition(status: PodStatus, type_: str, value: bool, reason: str | None = None) -> None:
    new = Condition(type=type_, status="True" if value else "False", reason=reason)
    status.conditions = set_condition(status.conditions, new, _now())


def _terminated(exit: ExitStatus) -> ContainerStateTerminated:
    return ContainerStateTerminated(
        exit_code=exit.exit_code,
        signal=exit.signal,
        reason=exit.reason,
        message=exit.message,
        started_at=datetime.fromtimestamp(exit.started_at, UTC),
        finished_at=datetime.fromtimestamp(exit.finished_at, UTC),
    )


class PodWorker:
    def __init__(self, ctx: AgentContext, pod: Pod) -> None:
        self.ctx = ctx
        self.pod = pod
        self.uid = pod.metadata.uid or ""
        self.namespace = pod.metadata.namespace or "default"
        self.name = pod.metadata.name
        self.deleting = asyncio.Event()
        self.vanished = False  # force-deleted: no finalizer left to remove
        self.logs = PodLogs.for_pod(ctx.data_dir / "logs", self.namespace, self.name, self.uid)
        self._kill = asyncio.Event()
        self._kill_reason = ""
        self._prober: PodProber | None = None
        self._ready_task: asyncio.Task[None] | None = None
        self.update(pod)

    # -- feeding ------------------------------------------------------------------------------
    def update(self, pod: Pod) -> None:
        self.pod = pod
        if pod.metadata.deletion_timestamp is not None:
            self.deleting.set()

    def vanish(self) -> None:
        self.vanished = True
        self.deleting.set()

    # -- the life -------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._live()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("pod %s/%s: worker failed", self.namespace, self.name)
            self.ctx.recorder.record(self.pod, "Warning", "AgentError", str(error))

    async def _live(self) -> None:
        record = self.ctx.records.load(self.uid) or PodRecord(self.uid, self.namespace, self.name)
        history = RestartHistory(restart_count=self.pod.status.restart_count)
        driver: Driver | None = None
        handle: TaskHandle | None = None
        last_exit: ExitStatus | None = None
        adopted = False
        if record.handle is not None:
            driver = self.ctx.drivers.by_name(record.handle.driver)
            self.ctx.ports.restore(self.uid, record.ports)
            recovered = await driver.recover(record.handle)
            if isinstance(recovered, TaskHandle):
                handle, adopted = recovered, True
            else:
                last_exit = recovered
                record.handle = None
        if handle is None and self.deleting.is_set():
            await self._finish()
            return
        if handle is None and not await self._set_finalizer(present=True):
            return
        while not self.deleting.is_set():
            if handle is None:
                if last_exit is not None:
                    decision = next_restart(
                        self.pod.spec.restart_policy, last_exit, history, time.time()
                    )
                    if not decision.restart:
                        await self._write_status(partial(self._terminal, phase=decision.phase))
                        await self.deleting.wait()
                        break
                    history = decision.history
                    await self._write_status(partial(self._waiting, message=decision.message))
                    if await self._sleep_unless_deleting(decision.delay_seconds):
                        break
                    self.logs.new_run()
                started = await self._start(record, history)
                if isinstance(started, ExitStatus):
                    last_exit = started
                    continue
                driver, handle = started
            assert driver is not None
            exit = await self._supervise(driver, handle, adopted)
            adopted = False
            if exit is None:
                break
            last_exit, handle = exit, None
            record.handle = None
            self.ctx.records.save(record)
        if handle is not None and driver is not None:
            await self._stop(driver, handle)
        await self._finish()

    async def _start(
        self, record: PodRecord, history: RestartHistory
    ) -> tuple[Driver, TaskHandle] | ExitStatus:
        pod = self.pod
        now = time.time()
        chosen = self.ctx.drivers.for_pod(pod)
        try:
            allocated = self.ctx.ports.allocate(self.uid, port_names_to_allocate(pod.spec))
        except PortsExhaustedError as error:
            chosen = StartError("PortsExhausted", str(error))
            allocated = {}
        ports, primary = assign_ports(pod.spec, allocated)
        spec = self._process_spec(ports, primary)
        started = chosen if isinstance(chosen, StartError) else await chosen.start(spec)
        if isinstance(started, StartError):
            self.ctx.recorder.record(pod, "Warning", started.reason, started.message)
            failure = ExitStatus(None, None, started.reason, now, time.time(), started.message)
            await self._write_status(lambda s: self._start_failed(s, failure))
            return failure
        assert not isinstance(chosen, StartError)
        record.handle, record.ports = started, ports
        record.restart_count = history.restart_count
        self.ctx.records.save(record)

        def running(status: PodStatus) -> None:
            status.phase = "Running"
            status.pid = started.pid
            status.process_start_time = started.create_time
            status.host_ports = dict(ports)
            status.host_port = primary
            status.host_ip = self.ctx.address
            status.start_time = status.start_time or _now()
            status.restart_count = history.restart_count
            status.reason = status.message = None
            status.ready = False
            _condition(status, "ContainersReady", False, "Starting")
            _condition(status, "Ready", False, "Starting")

        await self._write_status(running)
        self.ctx.recorder.record(pod, "Normal", "Started", f"started pid {started.pid}")
        return chosen, started

    def _process_spec(self, ports: dict[str, int], primary: int | None) -> ProcessSpec:
        pod = self.pod
        workdir = self.ctx.data_dir / "pods" / self.uid / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.parent.chmod(0o755)
        cwd = Path(pod.spec.working_dir) if pod.spec.working_dir else workdir
        env = pod_environment(pod, self.ctx.services.items(), self.ctx.server_url)
        self.logs.current.parent.mkdir(parents=True, exist_ok=True)
        return ProcessSpec(
            argv=[*pod.spec.command, *pod.spec.args],
            cwd=cwd,
            log_path=self.logs.current,
            pod_uid=self.uid,
            pod_name=self.name,
            namespace=self.namespace,
            env=env,
            ports=ports,
            primary_port=primary,
            limits=pod_limits(pod.spec),
            owner=owner_name(pod),
        )

    async def _supervise(
        self, driver: Driver, handle: TaskHandle, adopted: bool
    ) -> ExitStatus | None:
        """Watch one run until it exits (its ExitStatus), a probe kills it, or the pod is
        being deleted (None: the process is still running and must be stopped)."""
        ports = self.ctx.ports.ports_of(self.uid)
        record = self.ctx.records.load(self.uid)
        if record is not None:
            ports = record.ports
        spec = self._process_spec(ports, self.pod.status.host_port)
        self._kill.clear()
        prober = PodProber(
            startup=self.pod.spec.startup_probe,
            readiness=self.pod.spec.readiness_probe,
            liveness=self.pod.spec.liveness_probe,
            target=ProbeTarget(ExecContext.for_spec(spec), ports),
            on_event=self._on_probe,
        )
        self._prober = prober
        prober.start()
        waiting = asyncio.ensure_future(driver.wait(handle))
        killing = asyncio.ensure_future(self._kill.wait())
        deleting = asyncio.ensure_future(self.deleting.wait())
        try:
            await asyncio.wait({waiting, killing, deleting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            killing.cancel()
            deleting.cancel()
        if waiting.done():
            exit = waiting.result()
            await self._end_run(prober)
            await driver.stop(handle, 0)  # releases the driver's hold on the finished task
            await self._record_exit(exit)
            return exit
        if self._kill.is_set():
            waiting.cancel()
            await self._end_run(prober)
            outcome = await stop_pod(
                driver,
                handle,
                grace_seconds=self.pod.spec.termination_grace_period_seconds,
                pre_stop=self.pod.spec.lifecycle.pre_stop if self.pod.spec.lifecycle else None,
                context=ExecContext.for_spec(spec),
            )
            exit = ExitStatus(
                outcome.exit.exit_code,
                outcome.exit.signal,
                "Unhealthy",
                outcome.exit.started_at,
                outcome.exit.finished_at,
                self._kill_reason,
            )
            await self._record_exit(exit)
            return exit
        waiting.cancel()
        return None

    async def _end_run(self, prober: PodProber) -> None:
        await prober.stop()
        self._prober = None
        if self._ready_task is not None:
            self._ready_task.cancel()
            self._ready_task = None

    async def _record_exit(self, exit: ExitStatus) -> None:
        if not exit.succeeded:
            what = f"signal {exit.signal}" if exit.signal else f"exit code {exit.exit_code}"
            detail = f": {exit.message}" if exit.message else ""
            self.ctx.recorder.record(
                self.pod, "Warning", exit.reason or "Exited", f"process ended ({what}){detail}"
            )

        def ended(status: PodStatus) -> None:
            status.ready = False
            status.pid = None
            status.last_state = _terminated(exit)
            _condition(status, "ContainersReady", False, exit.reason)
            _condition(status, "Ready", False, exit.reason)

        await self._write_status(ended)

    async def _on_probe(self, event: ProbeEvent) -> None:
        if event.kind in ("liveness", "startup") and not event.success:
            self._kill_reason = f"{event.kind} probe failed: {event.message}"
            self.ctx.recorder.record(self.pod, "Warning", "Unhealthy", self._kill_reason)
            self._kill.set()
            return
        if event.kind != "readiness":
            return
        if event.success:
            await self._write_status(lambda s: _condition(s, "ContainersReady", True))
            if self._ready_task is None or self._ready_task.done():
                self._ready_task = asyncio.create_task(self._become_ready())
            return
        self.ctx.recorder.record(self.pod, "Warning", "Unhealthy", f"readiness: {event.message}")
        if self._ready_task is not None:
            self._ready_task.cancel()
            self._ready_task = None

        def not_ready(status: PodStatus) -> None:
            status.ready = False
            _condition(status, "ContainersReady", False, "ReadinessProbeFailed")
            _condition(status, "Ready", False, "ReadinessProbeFailed")

        await self._write_status(not_ready)

    async def _become_ready(self) -> None:
        """Ready only once Envoy routes to the pod (or no Service selects it)."""
        while not self.deleting.is_set():
            if not is_selected(self.ctx.services.items(), self.pod):
                break
            if await self.ctx.dataplane.wait_serving(self.uid, READY_CONFIRM_TIMEOUT):
                break
            reason = self.ctx.dataplane.last_error or "Envoy has not confirmed the endpoint"
            self.ctx.recorder.record(self.pod, "Warning", "NotInEnvoy", reason)
        if self.deleting.is_set() or self._prober is None or not self._prober.ready:
            return

        def ready(status: PodStatus) -> None:
            status.ready = True
            _condition(status, "Ready", True)

        await self._write_status(ready)

    async def _stop(self, driver: Driver, handle: TaskHandle) -> None:
        """The stop path: out of Envoy (confirmed), drained, preStop, SIGTERM, SIGKILL."""
        self.ctx.routing_changed()
        if not await self.ctx.dataplane.drain(self.uid, self.ctx.drain_timeout):
            self.ctx.recorder.record(
                self.pod, "Warning", "DrainTimeout",
                f"requests still in flight after {self.ctx.drain_timeout:g}s; stopping anyway",
            )  # fmt: skip
        if self._prober is not None:
            await self._end_run(self._prober)
        ports = self.ctx.ports.ports_of(self.uid)
        spec = self._process_spec(ports, self.pod.status.host_port)
        outcome = await stop_pod(
            driver,
            handle,
            grace_seconds=self.pod.spec.termination_grace_period_seconds,
            pre_stop=self.pod.spec.lifecycle.pre_stop if self.pod.spec.lifecycle else None,
            context=ExecContext.for_spec(spec),
        )
        self.ctx.recorder.record(self.pod, "Normal", "Killing", "stopped the pod's process")

        def stopped(status: PodStatus) -> None:
            status.ready = False
            status.pid = None
            status.phase = "Succeeded" if outcome.exit.succeeded else "Failed"
            status.last_state = _terminated(outcome.exit)
            _condition(status, "ContainersReady", False, "Terminated")
            _condition(status, "Ready", False, "Terminated")

        await self._write_status(stopped)

    async def _finish(self) -> None:
        self.ctx.ports.release(self.uid)
        self.ctx.records.remove(self.uid)
        if not self.vanished:
            await self._set_finalizer(present=False)
        self.logs.remove()

    # -- status helpers ---------------------------------------------------------------------
    @staticmethod
    def _terminal(status: PodStatus, phase: str) -> None:
        status.phase = "Succeeded" if phase == "Succeeded" else "Failed"
        status.ready = False

    @staticmethod
    def _waiting(status: PodStatus, message: str) -> None:
        status.reason = "CrashLoopBackOff"
        status.message = message
        status.ready = False

    @staticmethod
    def _start_failed(status: PodStatus, failure: ExitStatus) -> None:
        status.reason = failure.reason
        status.message = failure.message
        status.ready = False
        status.last_state = _terminated(failure)
        _condition(status, "ContainersReady", False, failure.reason)
        _condition(status, "Ready", False, failure.reason)

    async def _sleep_unless_deleting(self, seconds: float) -> bool:
        """Sleep; True when the pod started being deleted meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.deleting.wait(), max(seconds, 0.0))
        return self.deleting.is_set()

    def _latest(self) -> Pod:
        cached = self.ctx.pods.get(self.namespace, self.name)
        if cached is not None and cached.metadata.uid == self.uid:
            self.pod = cached
        return self.pod

    async def _write_status(self, mutate: Callable[[PodStatus], None]) -> None:
        """Read-modify-write of the pod's status; retried on conflict, dropped if gone."""
        for _ in range(10):
            pod = self._latest()
            status = pod.status.model_copy(deep=True)
            mutate(status)
            if status == pod.status:
                return
            try:
                updated = await self.ctx.client.update_status(
                    pod.model_copy(update={"status": status})
                )
            except Conflict:
                await self._refresh()
                continue
            except NotFound:
                return
            except ApiError as error:
                log.warning("pod %s/%s: status not written: %s", self.namespace, self.name, error)
                return
            self.ctx.pods.remember(updated)
            self.pod = updated
            self.ctx.routing_changed()
            return

    async def _refresh(self) -> None:
        with contextlib.suppress(NotFound):
            fresh = await self.ctx.client.get(Pod, self.name, self.namespace)
            if fresh.metadata.uid == self.uid:
                self.ctx.pods.remember(fresh)
                self.pod = fresh

    async def _set_finalizer(self, *, present: bool) -> bool:
        """Add or remove our finalizer; False when the pod is gone."""
        for _ in range(10):
            pod = self._latest()
            has = FINALIZER in pod.metadata.finalizers
            if has == present:
                return True
            finalizers = [f for f in pod.metadata.finalizers if f != FINALIZER]
            if present:
                finalizers.append(FINALIZER)
            meta = pod.metadata.model_copy(update={"finalizers": finalizers})
            try:
                updated = await self.ctx.client.update(pod.model_copy(update={"metadata": meta}))
            except Conflict:
                await self._refresh()
                continue
            except NotFound:
                return False
            self.ctx.pods.remember(updated)
            self.pod = updated
            return True
        return False
