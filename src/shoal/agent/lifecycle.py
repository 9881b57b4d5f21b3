"""The node-local end of a pod's stop path: preStop, then SIGTERM, grace, SIGKILL of the group.

The agent runner first takes the pod out of Envoy and waits for the drain (that part needs the
Envoy helper); then it calls `stop_pod`, which follows Kubernetes' rule that
terminationGracePeriodSeconds covers the preStop hook AND the SIGTERM wait:

    t0 ── preStop (exec | sleep), bounded by the grace period ── t1
    t1 ── driver.stop(grace - (t1 - t0)): SIGTERM group, wait, SIGKILL group

If the hook used up the whole grace period the process still gets a short extra window after
SIGTERM (Kubernetes gives 2 s), so that a slow hook does not turn every stop into a SIGKILL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from shoal.agent.drivers.base import Driver, ExitStatus, TaskHandle
from shoal.agent.exec_action import ExecContext, run_exec
from shoal.api.pod import LifecycleHandler

TERM_EXTENSION_SECONDS = 2.0


@dataclass(frozen=True)
class PreStopResult:
    ran: bool
    succeeded: bool
    seconds: float
    message: str


async def run_pre_stop(
    handler: LifecycleHandler | None,
    context: ExecContext,
    limit_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> PreStopResult:
    """Run the preStop hook, never longer than `limit_seconds`. A failing hook is reported,
    not fatal: the stop goes on either way (as in Kubernetes)."""
    if handler is None:
        return PreStopResult(False, True, 0.0, "no preStop hook")
    started = clock()
    limit = max(limit_seconds, 0.0)
    if handler.sleep is not None:
        seconds = min(handler.sleep.seconds, limit)
        await asyncio.sleep(seconds)
        cut = " (cut short by the grace period)" if seconds < handler.sleep.seconds else ""
        return PreStopResult(True, True, clock() - started, f"slept {seconds:g}s{cut}")
    assert handler.exec is not None
    if limit <= 0:
        return PreStopResult(True, False, 0.0, "preStop skipped: no grace period left")
    result = await run_exec(handler.exec.command, context, limit)
    return PreStopResult(True, result.succeeded, clock() - started, result.describe())


@dataclass(frozen=True)
class StopOutcome:
    exit: ExitStatus
    pre_stop: PreStopResult


async def stop_pod(
    driver: Driver,
    handle: TaskHandle,
    *,
    grace_seconds: float,
    pre_stop: LifecycleHandler | None,
    context: ExecContext,
    clock: Callable[[], float] = time.monotonic,
) -> StopOutcome:
    """preStop within the grace period, then the driver's SIGTERM -> grace -> SIGKILL."""
    started = clock()
    hook = await run_pre_stop(pre_stop, context, grace_seconds, clock)
    remaining = grace_seconds - (clock() - started)
    if hook.ran and remaining <= 0 < grace_seconds:
        remaining = TERM_EXTENSION_SECONDS
    exit = await driver.stop(handle, max(remaining, 0.0))
    return StopOutcome(exit, hook)
