"""One pod's life on this node: start, probe, restart, and the graceful stop path.

The agent runner creates a `PodWorker` per pod bound to this node and feeds it every new
version of the pod. The worker owns the pod's status (the agent is its only writer); each
change is one of the pure transitions of `podstatus`.

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
before its replacement takes traffic. A liveness kill first takes the pod out of Envoy too.
After an agent restart the worker re-adopts the recorded process (pid + start time) and goes
on supervising it: no new start, restartCount unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from shoal.agent import podstatus
from shoal.agent.context import AgentContext
from shoal.agent.drivers.base import Driver, ExitStatus, ProcessSpec, StartError, TaskHandle
from shoal.agent.exec_action import ExecContext
from shoal.agent.lifecycle import StopOutcome, stop_pod
from shoal.agent.logs import PodLogs
from shoal.agent.pod_probing import run_prober
from shoal.agent.podprocess import assign_ports, port_names_to_allocate, process_spec
from shoal.agent.podwrites import PodWrites
from shoal.agent.ports import PortsExhaustedError
from shoal.agent.probes import PodProber, ProbeEvent
from shoal.agent.records import PodRecord
from shoal.agent.restarts import RestartHistory, next_restart, settle_seconds
from shoal.agent.routing import is_selected
from shoal.api.meta import find_condition
from shoal.api.pod import Pod, PodStatus

log = logging.getLogger(__name__)

FINALIZER = "shoal.dev/process"
READY_CONFIRM_TIMEOUT = 30.0
UNHEALTHY_DRAIN_SECONDS = 5.0  # a liveness kill waits this long at most for Envoy to let go
Run = tuple[Driver, TaskHandle]


def is_scheduled(pod: Pod) -> bool:
    condition = find_condition(pod.status.conditions, "PodScheduled")
    return condition is not None and condition.status == "True"


class PodWorker:
    def __init__(self, ctx: AgentContext, pod: Pod, *, scheduling: bool = False) -> None:
        """`scheduling`: the scheduler bound this pod a moment ago and its PodScheduled write
        may still be on its way."""
        self.ctx = ctx
        self.scheduled = asyncio.Event()  # the gate of our writes (see PodWrites)
        if not scheduling:
            self.scheduled.set()
        self.writes = PodWrites(
            ctx.client, ctx.pods, pod, self._written, self.scheduled, slots=ctx.write_slots
        )
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
        self._routable_at = 0.0  # monotonic: when this run may be Ready (see settle_seconds)
        self._writes: set[asyncio.Future[None]] = set()
        self.update(pod)

    # -- feeding ------------------------------------------------------------------------------
    @property
    def pod(self) -> Pod:
        return self.writes.latest()

    def update(self, pod: Pod) -> None:
        self.writes.pod = pod
        if is_scheduled(pod):
            self.scheduled.set()
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
            for write in self._writes:  # the agent is going away; so are its pending writes
                write.cancel()
            self.writes.cancel()
            raise
        except Exception as error:
            log.exception("pod %s/%s: worker failed", self.namespace, self.name)
            self.ctx.recorder.record(self.pod, "Warning", "AgentError", str(error))

    async def _live(self) -> None:
        record = self.ctx.records.load(self.uid) or PodRecord(self.uid, self.namespace, self.name)
        history = RestartHistory(restart_count=self.pod.status.restart_count)
        run, last_exit = await self._adopt(record)
        start_failed = False  # the last attempt failed to start (vs a run that ended)
        if run is None and self.deleting.is_set():
            await self._finish()
            return
        # Our finalizer is written while the first process starts (one API round trip less
        # before the pod can be ready); should the pod be gone, that process is stopped.
        finalizer = None if run else asyncio.ensure_future(self._set_finalizer(True))
        while not self.deleting.is_set():
            if run is None:
                if last_exit is not None:
                    decision = next_restart(
                        self.pod.spec.restart_policy, last_exit, history, time.time()
                    )
                    if not decision.restart:
                        finished = partial(podstatus.finished, phase=decision.phase)
                        await self._write_status(partial(finished, message=decision.message))
                        await self.deleting.wait()
                        break
                    history = decision.history
                    reason = last_exit.reason if start_failed else podstatus.CRASH_LOOP
                    waiting = partial(podstatus.waiting, reason=reason, message=decision.message)
                    # Not awaited: the back-off starts now, whatever the API's delay, and the
                    # exit and this wait go in one write when they queue together (PodWrites).
                    self._later(self.writes.status(waiting))
                    if await self._sleep_unless_deleting(decision.delay_seconds):
                        break
                    self.logs.new_run()
                ran = None if start_failed or last_exit is None else last_exit.ran_for
                started = await self._start(record, history, settle_seconds(ran))
                if finalizer is not None and not await finalizer:
                    if not isinstance(started, ExitStatus):
                        await started[0].stop(started[1], 0)
                    break
                finalizer = None
                start_failed = isinstance(started, ExitStatus)
                if isinstance(started, ExitStatus):
                    last_exit = started
                    continue
                run = started
            exit = await self._supervise(*run)
            if exit is None:
                break  # being deleted; the process still runs
            last_exit, run = exit, None
            record.handle = None
            self.ctx.records.save(record)
        if run is not None:
            await self._stop(*run)
        await self._finish()

    async def _adopt(self, record: PodRecord) -> tuple[Run | None, ExitStatus | None]:
        """Re-adopt the process an earlier agent recorded, if it is still the same process."""
        if record.handle is None:
            return None, None
        driver = self.ctx.drivers.by_name(record.handle.driver)
        self.ctx.ports.restore(self.uid, record.ports)
        recovered = await driver.recover(record.handle)
        if isinstance(recovered, TaskHandle):
            log.info("pod %s/%s: re-adopted pid %s", self.namespace, self.name, recovered.pid)
            if self.pod.status.pid != recovered.pid:
                # The last agent died between starting this process and its status write
                # (`_start` does not await it): write it now, or the pod stays Pending with
                # its process running and is never routed (seen by chaos scenario 1).
                ports, primary = assign_ports(self.pod.spec, record.ports)
                running = partial(
                    podstatus.running, handle=recovered, ports=ports, primary=primary,
                    address=self.ctx.address, restart_count=record.restart_count,
                )  # fmt: skip
                self._later(self._write_status(running))
            return (driver, recovered), None
        record.handle = None
        self.ctx.records.save(record)
        self._record_exit(recovered)
        return None, recovered

    async def _start(
        self, record: PodRecord, history: RestartHistory, settle: float
    ) -> Run | ExitStatus:
        """Start a run that may be Ready no sooner than `settle` seconds after its start."""
        pod = self.pod
        began = time.time()
        chosen = self.ctx.drivers.for_pod(pod)
        try:
            allocated = self.ctx.ports.allocate(self.uid, port_names_to_allocate(pod.spec))
        except PortsExhaustedError as error:
            chosen, allocated = StartError("PortsExhausted", str(error)), {}
        ports, primary = assign_ports(pod.spec, allocated)
        spec = self._process_spec(ports)
        started = chosen if isinstance(chosen, StartError) else await chosen.start(spec)
        if isinstance(started, StartError):
            self.ctx.recorder.record(pod, "Warning", started.reason, started.message)
            failure = ExitStatus(None, None, started.reason, began, time.time(), started.message)
            self._later(self.writes.status(lambda s: podstatus.start_failed(s, failure)))
            return failure
        assert not isinstance(chosen, StartError)
        record.handle, record.ports = started, ports
        record.restart_count = history.restart_count
        self.ctx.records.save(record)
        running = partial(podstatus.running, handle=started, ports=ports, primary=primary)
        address, count = self.ctx.address, history.restart_count
        # Not awaited: the app starts meanwhile; later writes queue behind it (PodWrites). A
        # restart's write lingers, and a crash-looping pod's run settles before it is Ready
        # (restarts.settle_seconds): should the process crash at once, one write tells both,
        # and the pod never flaps in and out of Envoy and its owners' status.
        self._routable_at = time.monotonic() + settle
        write = partial(running, address=address, restart_count=count)
        self._later(self.writes.status(write, linger=count > 0))
        # One message for every start, so a restart bumps the count of one Event (the pid is
        # in the status) instead of adding an Event per restart.
        self.ctx.recorder.record(pod, "Normal", "Started", "started the pod's process")
        return chosen, started

    def _process_spec(self, ports: dict[str, int]) -> ProcessSpec:
        workdir = self.ctx.data_dir / "pods" / self.uid / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.parent.chmod(0o755)
        self.logs.current.parent.mkdir(parents=True, exist_ok=True)
        return process_spec(
            self.pod, workdir=workdir, log_path=self.logs.current, ports=ports,
            services=self.ctx.services.items(), server_url=self.ctx.server_url,
        )  # fmt: skip

    def _current_spec(self) -> ProcessSpec:
        record = self.ctx.records.load(self.uid)
        return self._process_spec(record.ports if record else self.ctx.ports.ports_of(self.uid))

    async def _supervise(self, driver: Driver, handle: TaskHandle) -> ExitStatus | None:
        """Watch one run until it exits (its ExitStatus), a probe kills it, or the pod is
        being deleted (None: the process is still running and must be stopped)."""
        spec = self._current_spec()
        self._kill.clear()
        prober = run_prober(self.pod, spec, self._on_probe)
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
            await self._end_run()
            await driver.stop(handle, 0)  # releases the driver's hold on the finished task
            self._record_exit(exit)
            return exit
        waiting.cancel()
        if not self._kill.is_set():
            return None
        await self._end_run()
        reason = self._kill_reason
        await self._write_status(partial(podstatus.not_ready, reason="Unhealthy", message=reason))
        if self.ctx.drain_before_stop:
            await self.ctx.dataplane.drain(self.uid, UNHEALTHY_DRAIN_SECONDS)
        outcome = await self._stop_process(driver, handle, spec)
        ended = outcome.exit
        exit = ExitStatus(
            ended.exit_code, ended.signal, "Unhealthy", ended.started_at, ended.finished_at, reason
        )
        self._record_exit(exit)
        return exit

    async def _stop_process(
        self, driver: Driver, handle: TaskHandle, spec: ProcessSpec
    ) -> StopOutcome:
        lifecycle = self.pod.spec.lifecycle
        return await stop_pod(
            driver,
            handle,
            grace_seconds=self.pod.spec.termination_grace_period_seconds,
            pre_stop=lifecycle.pre_stop if lifecycle else None,
            context=ExecContext.for_spec(spec),
        )

    async def _end_run(self) -> None:
        if self._prober is not None:
            await self._prober.stop()
            self._prober = None
        self._unready()

    def _unready(self) -> None:
        if self._ready_task is not None:
            self._ready_task.cancel()
            self._ready_task = None
        if self.uid in self.ctx.locally_ready:
            self.ctx.locally_ready.discard(self.uid)
            self.ctx.routing_changed()

    def _record_exit(self, exit: ExitStatus) -> None:
        if not exit.succeeded:
            what = f"signal {exit.signal}" if exit.signal else f"exit code {exit.exit_code}"
            detail = f": {exit.message}" if exit.message else ""
            self.ctx.recorder.record(
                self.pod, "Warning", exit.reason or "Exited", f"process ended ({what}){detail}"
            )
        self._later(self.writes.status(lambda s: podstatus.exited(s, exit)))

    async def _on_probe(self, event: ProbeEvent) -> None:
        if event.kind in ("liveness", "startup") and not event.success:
            self._kill_reason = f"{event.kind} probe failed: {event.message}"
            self.ctx.recorder.record(self.pod, "Warning", "Unhealthy", self._kill_reason)
            self._kill.set()
            return
        if event.kind != "readiness":
            return
        if event.success:
            if time.monotonic() >= self._routable_at:
                self._route()
            if self._ready_task is None or self._ready_task.done():
                self._ready_task = asyncio.create_task(self._become_ready())
            return
        self.ctx.recorder.record(self.pod, "Warning", "Unhealthy", f"readiness: {event.message}")
        self._unready()
        failed = partial(podstatus.not_ready, reason="ReadinessProbeFailed")
        await self._write_status(partial(failed, message=event.message))

    def _route(self) -> None:
        """The data plane may send this run traffic (once it passed its readiness probe)."""
        if self.uid not in self.ctx.locally_ready:
            self.ctx.locally_ready.add(self.uid)
            self.ctx.routing_changed()

    async def _become_ready(self) -> None:
        """Ready only once Envoy routes to the pod (or no Service selects it); one write sets
        ContainersReady and Ready. A restarted run first settles (cancelled with the run)."""
        settling = self._routable_at - time.monotonic()
        if settling > 0:
            await asyncio.sleep(settling)
            self._route()
        while not self.deleting.is_set():
            if not is_selected(self.ctx.services.items(), self.pod):
                break
            if await self.ctx.dataplane.wait_serving(self.uid, READY_CONFIRM_TIMEOUT):
                break
            reason = self.ctx.dataplane.last_error or "Envoy has not confirmed the endpoint"
            self.ctx.recorder.record(self.pod, "Warning", "NotInEnvoy", reason)
        if self.deleting.is_set() or self._prober is None or not self._prober.ready:
            return
        await self._write_status(podstatus.ready)

    async def _stop(self, driver: Driver, handle: TaskHandle) -> None:
        """The stop path: out of Envoy (confirmed), drained, preStop, SIGTERM, SIGKILL."""
        timeout = self.ctx.drain_timeout
        if self.ctx.drain_before_stop and not await self.ctx.dataplane.drain(self.uid, timeout):
            self.ctx.recorder.record(
                self.pod, "Warning", "DrainTimeout",
                f"requests still in flight after {timeout:g}s; stopping anyway",
            )  # fmt: skip
        await self._end_run()
        outcome = await self._stop_process(driver, handle, self._current_spec())
        self.ctx.recorder.record(self.pod, "Normal", "Killing", "stopped the pod's process")
        await self._write_status(lambda s: podstatus.stopped(s, outcome.exit))

    def _later(self, write: Awaitable[None]) -> None:
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _finish(self) -> None:
        await asyncio.gather(*self._writes)
        self.ctx.ports.release(self.uid)
        self.ctx.records.remove(self.uid)
        if not self.vanished:
            await self._set_finalizer(False)
        self.logs.remove()

    # -- helpers --------------------------------------------------------------------------------
    async def _sleep_unless_deleting(self, seconds: float) -> bool:
        """Sleep; True when the pod started being deleted meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.deleting.wait(), max(seconds, 0.0))
        return self.deleting.is_set()

    async def _write_status(self, mutate: Callable[[PodStatus], None]) -> None:
        await self.writes.status(mutate)

    async def _set_finalizer(self, present: bool) -> bool:
        return await self.writes.finalizer(FINALIZER, present)

    def _written(self, pod: Pod) -> None:
        self.update(pod)
        self.ctx.routing_changed()
