"""Startup, readiness and liveness probes with Kubernetes' semantics.

The pod worker gets one `PodProber` per process run from `pod_probing.run_prober` (a restarted
process gets a fresh one), `start()`s it and reacts to the `ProbeEvent`s it reports:

    ("startup",   True)   the process has started; readiness and liveness probes begin
    ("startup",   False)  startupProbe failed failureThreshold times: kill, restart by policy
    ("readiness", True)   ready: route traffic to it   (also sent when there is no readinessProbe)
    ("readiness", False)  not ready: take it out of the Service, do not restart it
    ("liveness",  False)  livenessProbe failed failureThreshold times: kill, restart by policy

`ProbeState` is the pure part (threshold counting, as kubelet's prober worker does it):

    consecutive results of the same kind are counted; the reported status changes only when
    successThreshold successes / failureThreshold failures in a row have been seen.

           UNKNOWN ──(startup)──┐
              │                 │   initial status: readiness FAILURE, liveness SUCCESS,
              v                 v   startup UNKNOWN
           SUCCESS <────────> FAILURE ──(liveness, startup)──> on hold until the next run

Timing: the first attempt of every probe comes initialDelaySeconds after the process started
(for readiness and liveness, not before the startup probe succeeded), then one every
periodSeconds; each attempt is bounded by timeoutSeconds (`pod_probing.check`: httpGet and
tcpSocket in `socket_probes`, exec in `probe_checks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import httpx

from shoal.agent.probe_checks import CheckResult, ProbeTarget, check_probe, probe_client
from shoal.api.pod import Probe

ProbeKind = Literal["startup", "readiness", "liveness"]

logger = logging.getLogger(__name__)


class ProbeStatus(enum.Enum):
    UNKNOWN = "Unknown"
    SUCCESS = "Success"
    FAILURE = "Failure"


INITIAL_STATUS: dict[ProbeKind, ProbeStatus] = {
    "startup": ProbeStatus.UNKNOWN,
    "readiness": ProbeStatus.FAILURE,
    "liveness": ProbeStatus.SUCCESS,
}


class ProbeState:
    """Threshold counting for one probe of one process run. Pure: feed it results."""

    def __init__(self, kind: ProbeKind, success_threshold: int, failure_threshold: int) -> None:
        self.kind = kind
        self.success_threshold = success_threshold
        self.failure_threshold = failure_threshold
        self.status = INITIAL_STATUS[kind]
        self.on_hold = False
        self._last: bool | None = None
        self._run = 0
        self._reported = False

    @classmethod
    def for_probe(cls, kind: ProbeKind, probe: Probe) -> ProbeState:
        return cls(kind, probe.success_threshold, probe.failure_threshold)

    def observe(self, success: bool) -> ProbeStatus | None:
        """Count one result; return the new status when it changes, else None."""
        if self.on_hold:
            return None
        if success == self._last:
            self._run += 1
        else:
            self._last, self._run = success, 1
        if self._run < (self.success_threshold if success else self.failure_threshold):
            return None
        status = ProbeStatus.SUCCESS if success else ProbeStatus.FAILURE
        # Readiness reports its first verdict even when it equals the initial status, so that
        # a process that never gets ready says why (a FAILURE with the probe's message).
        changed = status != self.status or (self.kind == "readiness" and not self._reported)
        self._reported = True
        self.status = status
        if not success and self.kind != "readiness":
            # The process will be killed: stop judging it (kubelet puts the worker on hold).
            self.on_hold, self._run = True, 0
        return status if changed else None


@dataclass(frozen=True)
class ProbeEvent:
    kind: ProbeKind
    success: bool
    message: str


ProbeCallback = Callable[[ProbeEvent], Awaitable[None]]
CheckFunction = Callable[[Probe], Awaitable[CheckResult]]


class PodProber:
    """Runs the probes of one process run as asyncio tasks and reports transitions."""

    def __init__(
        self,
        *,
        startup: Probe | None,
        readiness: Probe | None,
        liveness: Probe | None,
        target: ProbeTarget,
        on_event: ProbeCallback,
        started_at: float | None = None,
        check: CheckFunction | None = None,
    ) -> None:
        """`started_at` is the process start on the event loop's clock (default: now)."""
        self._probes: dict[ProbeKind, Probe | None] = {
            "startup": startup,
            "readiness": readiness,
            "liveness": liveness,
        }
        self._target = target
        self._on_event = on_event
        self._started_at = started_at
        self._check = check
        self._started = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = False

    @property
    def started(self) -> bool:
        return self._started.is_set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        started_at = loop.time() if self._started_at is None else self._started_at
        check = self._check
        if check is None:
            client = probe_client()
            check = functools.partial(self._check_with, client)
            self._tasks.append(loop.create_task(self._close_on_cancel(client)))
        for kind, probe in self._probes.items():
            if probe is not None:
                work = self._work(kind, probe, started_at, check)
                self._tasks.append(loop.create_task(work, name=f"probe-{kind}"))
        if self._probes["readiness"] is None:
            self._tasks.append(loop.create_task(self._ready_when_started()))
        if self._probes["startup"] is None:
            self._started.set()

    async def stop(self) -> None:
        """Cancel every probe task and wait for them (call when the process run ends)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _check_with(self, client: httpx.AsyncClient, probe: Probe) -> CheckResult:
        return await check_probe(probe, self._target, client)

    async def _close_on_cancel(self, client: httpx.AsyncClient) -> None:
        """Owns the shared HTTP client: closes it when the prober stops."""
        try:
            await asyncio.Event().wait()
        finally:
            await client.aclose()

    async def _ready_when_started(self) -> None:
        await self._started.wait()
        await self._report(ProbeEvent("readiness", True, "no readiness probe"))

    async def _report(self, event: ProbeEvent) -> None:
        if event.kind == "readiness":
            self.ready = event.success
        if event.kind == "startup" and event.success:
            self._started.set()
        try:
            await self._on_event(event)
        except Exception:  # the runner's bug: log it, keep probing
            logger.exception("probe event handler failed for %s", event)

    async def _work(
        self, kind: ProbeKind, probe: Probe, started_at: float, check: CheckFunction
    ) -> None:
        if kind != "startup":
            await self._started.wait()
        loop = asyncio.get_running_loop()
        state = ProbeState.for_probe(kind, probe)
        next_at = started_at + probe.initial_delay_seconds
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            # check_probe bounds each attempt; the outer bound guards a misbehaving check.
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with a finished attempt, and stop() would then wait forever.
            try:
                async with asyncio.timeout(probe.timeout_seconds + 1):
                    result = await check(probe)
            except TimeoutError:
                result = CheckResult(False, f"timeout after {probe.timeout_seconds:g}s")
            except Exception as error:  # a bug in a check must not end the probing
                logger.exception("%s probe attempt failed", kind)
                result = CheckResult(False, f"probe error: {type(error).__name__}: {error}")
            change = state.observe(result.success)
            if change is not None:
                await self._report(ProbeEvent(kind, change == ProbeStatus.SUCCESS, result.message))
            if state.on_hold or (kind == "startup" and state.status == ProbeStatus.SUCCESS):
                return
            # A fixed schedule, like a ticker: slow attempts do not push later ones back.
            next_at = max(next_at + probe.period_seconds, loop.time())
