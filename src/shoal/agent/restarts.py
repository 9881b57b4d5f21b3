"""Restart policy with exponential backoff: a pure decision, no clock, no I/O.

The agent runner calls `next_restart(policy, exit, history, now)` each time a pod's process ends
(whatever ended it: a crash, a liveness failure kill, a normal exit) and either schedules the
restart at `decision.restart_at` or sets the terminal phase.

    exit ──> policy says restart? ── no ──> phase Succeeded (exit 0) / Failed
                     │ yes
                     v
             ran >= stable_after?  ── yes ──> backoff exponent reset to 0
                     │
                     v
             delay = min(initial * factor ** exponent, max);  exponent += 1

Defaults (shoal's, faster than Kubernetes' 10 s .. 5 min because a process starts in
milliseconds, not after an image pull): first restart after 0.5 s, doubling, capped at 30 s,
reset after a run of 10 s. An exit whose code is unknown (an adopted process) counts as a failure.
`settle_seconds(last_run_seconds)`: how long a run must last before the worker lets it be Ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shoal.agent.drivers.base import ExitStatus

RestartPolicy = Literal["Always", "OnFailure", "Never"]


@dataclass(frozen=True)
class Backoff:
    initial_seconds: float = 0.5
    factor: float = 2.0
    max_seconds: float = 30.0
    stable_after_seconds: float = 10.0

    def delay(self, exponent: int) -> float:
        # Cap the exponent before raising to the power so that huge counts cannot overflow.
        capped = min(exponent, 64)
        return float(min(self.initial_seconds * self.factor**capped, self.max_seconds))


DEFAULT_BACKOFF = Backoff()
# A run that follows a short one (the pod is crash-looping) is Ready (routed, counted by its
# ReplicaSet) only once it has run this long and its readiness probe passes. A process that dies
# at once then never takes a request, and a crash loop costs one pod status write per restart
# instead of flipping the pod's, its ReplicaSet's and its Deployment's readiness twice each (the
# start write lingers as long, podwrites.LINGER_SECONDS, to join the exit's). A pod's first run
# and a restart after a stable run (a kill, a liveness restart) are not held back.
RESTART_SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class RestartHistory:
    """What the policy remembers about a pod: `restart_count` for status.restartCount,
    `exponent` = restarts since the last stable run (drives the delay)."""

    restart_count: int = 0
    exponent: int = 0


@dataclass(frozen=True)
class RestartDecision:
    restart: bool
    delay_seconds: float
    restart_at: float
    reason: str  # "BackOff" when restarting, else the terminal phase's reason
    message: str
    history: RestartHistory
    phase: Literal["Running", "Succeeded", "Failed"]


def wants_restart(policy: RestartPolicy, exit: ExitStatus) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return not exit.succeeded
    return False


def next_restart(
    policy: RestartPolicy,
    exit: ExitStatus,
    history: RestartHistory,
    now: float,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> RestartDecision:
    """Decide whether and when to restart after `exit`; `now` is wall-clock seconds."""
    if not wants_restart(policy, exit):
        phase: Literal["Succeeded", "Failed"] = "Succeeded" if exit.succeeded else "Failed"
        return RestartDecision(
            restart=False,
            delay_seconds=0.0,
            restart_at=now,
            reason="Completed" if exit.succeeded else exit.reason,
            message=f"not restarted (restartPolicy {policy}): {exit.message or exit.reason}",
            history=history,
            phase=phase,
        )
    exponent = 0 if exit.ran_for >= backoff.stable_after_seconds else history.exponent
    delay = backoff.delay(exponent)
    # What is left of the delay since the exit, computed without `(finished + delay) - now`,
    # whose rounding could exceed the cap.
    remaining = min(max(delay - (now - exit.finished_at), 0.0), delay)
    return RestartDecision(
        restart=True,
        delay_seconds=remaining,
        restart_at=now + remaining,
        reason="BackOff",
        message=f"back-off {delay:g}s restarting pod ({exit.message or exit.reason})",
        history=RestartHistory(history.restart_count + 1, exponent + 1),
        phase="Running",
    )


def settle_seconds(last_run_seconds: float | None, backoff: Backoff = DEFAULT_BACKOFF) -> float:
    """How long a run must last before it may be Ready, given how long the pod's last run lasted
    (None: this is its first run): RESTART_SETTLE_SECONDS after a run shorter than the
    back-off's `stable_after_seconds`, else 0."""
    if last_run_seconds is None or last_run_seconds >= backoff.stable_after_seconds:
        return 0.0
    return RESTART_SETTLE_SECONDS
