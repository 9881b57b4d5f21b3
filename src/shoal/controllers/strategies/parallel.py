"""The ParallelRun gate: from the settings and the differ's DiffReport, what the rollout does next.

Pure: `decide(settings, report, started_at, now)` reads no clock and does no I/O, so the
deployment controller's ParallelRun step machine calls it on every reconcile and turns the
decision into writes (scale the candidate down and mark Degraded, switch traffic, or pause).

    mirroring starts (started_at)
              │
              ▼
          CONTINUE ◄─────── compared < minSamples (never decide on too few samples), or
              │             the rate is acceptable but `duration` has not elapsed yet
              ├── compared ≥ minSamples and diffRate > maxDiffRate ─────────► ABORT
              │      (at once, even before `duration`: a bad candidate stops early;
              │       the reason names the top differing field paths)
              └── compared ≥ minSamples, elapsed ≥ duration, diffRate ≤ maxDiffRate
                                                        ──► PROMOTE or PAUSE (`then`)

`report` is None while the differ has not written one yet: CONTINUE. The decision carries a
one-line `reason` for the Deployment's conditions and `shoal rollout status`, e.g.

    diff rate 96.0% > 1.0% after 250 samples; top differing fields:
    price (GET /price, 240 samples: 19.99 vs 20.0)

The step machine (`ParallelRun`, `strategy.type: ParallelRun`) is blue-green's with this gate
in place of "wait for promotion" (`bluegreen.rollout(ctx, gate=...)`), so the switch, abort,
warm old version, undo and user actions are one code path:

    new template ──► candidate ReplicaSet at `replicas` ──► all available ──► traffic
    {stable: primary, canary: candidate} confirmed by every node: live requests still go
    only to the primary, and the Service's route mirrors `mirrorPercent` of `methods` to
    the differ Pod (`shoal.agent.parallel_routing`; the controller runs that Pod and
    creates the DiffReport: `shoal.controllers.parallel_run`) ──► decide() every second:
        ABORT   ─► blue-green abort: mirror off, candidate scaled to 0, Degraded + Event
        PROMOTE ─► blue-green switch: the active port serves the candidate (confirmed),
                   the primary stays warm scaleDownDelaySeconds (30 s)
        PAUSE   ─► Paused until `shoal rollout promote` (the comparison goes on meanwhile)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from shoal.api.deployment import Deployment
from shoal.api.diffreport import DiffReport, DiffReportStatus, report_name
from shoal.api.parallelrun import ParallelRunSettings
from shoal.api.replicaset import ReplicaSet
from shoal.controllers.strategies import bluegreen
from shoal.controllers.strategies.base import RolloutContext, RolloutStep
from shoal.controllers.strategies.progressive import Decision, hash_of, progressing

TOP_FIELDS = 3
# Reports older than this are called out in the reason (the differ is probably not running).
STALE_AFTER_S = 30.0
# How often a comparing rollout looks at its report again (the differ publishes every 1 s).
CHECK_EVERY_S = 1.0
# On a DiffReport: the rollout attempt it counts for (`shoal rollout retry` starts a new one
# with a fresh report, so the retried run is not judged on the aborted run's samples).
ATTEMPT_ANNOTATION = "rollout.shoal.dev/attempt"


class GateAction(enum.Enum):
    CONTINUE = "Continue"
    ABORT = "Abort"
    PROMOTE = "Promote"
    PAUSE = "Pause"


@dataclass(frozen=True, slots=True)
class GateDecision:
    action: GateAction
    reason: str
    compared: int = 0
    diff_rate: float | None = None
    top_fields: tuple[str, ...] = ()  # field paths, most frequent first


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def top_field_summaries(status: DiffReportStatus, limit: int = TOP_FIELDS) -> list[str]:
    """`price (GET /price, 240 samples: 19.99 vs 20.0)` for the most frequent differences."""
    out = []
    for endpoint, found in status.top_fields(limit):
        example = found.example
        values = f": {example.primary} vs {example.candidate}" if example else ""
        out.append(f"{found.path} ({endpoint}, {found.count} samples{values})")
    return out


def _staleness(status: DiffReportStatus, now: datetime) -> str:
    if status.last_update_time is None:
        return ""
    age = (now - status.last_update_time).total_seconds()
    return f" (the differ last reported {age:.0f}s ago)" if age > STALE_AFTER_S else ""


def decide(
    settings: ParallelRunSettings,
    report: DiffReport | DiffReportStatus | None,
    started_at: datetime,
    now: datetime,
) -> GateDecision:
    """The next step of a parallel run that started mirroring at `started_at`."""
    if report is None:
        return GateDecision(GateAction.CONTINUE, "waiting for the differ's first report")
    status = report.status if isinstance(report, DiffReport) else report
    compared, rate = status.compared, status.diff_rate
    if compared < settings.min_samples:
        return GateDecision(
            GateAction.CONTINUE,
            f"compared {compared} of {settings.min_samples} samples needed"
            f"{_staleness(status, now)}",
            compared,
            rate if compared else None,
        )
    fields = tuple(found.path for _, found in status.top_fields(TOP_FIELDS))
    if rate > settings.max_diff_rate:
        summaries = "; ".join(top_field_summaries(status)) or "no field recorded"
        return GateDecision(
            GateAction.ABORT,
            f"diff rate {_percent(rate)} > {_percent(settings.max_diff_rate)} after {compared} "
            f"samples; top differing fields: {summaries}",
            compared,
            rate,
            fields,
        )
    elapsed = (now - started_at).total_seconds()
    wanted = settings.duration_seconds
    if elapsed < wanted:
        return GateDecision(
            GateAction.CONTINUE,
            f"diff rate {_percent(rate)} after {compared} samples; comparing for "
            f"{wanted - elapsed:.0f}s more{_staleness(status, now)}",
            compared,
            rate,
            fields,
        )
    action = GateAction.PROMOTE if settings.then == "promote" else GateAction.PAUSE
    return GateDecision(
        action,
        f"diff rate {_percent(rate)} <= {_percent(settings.max_diff_rate)} after {compared} "
        f"samples over {elapsed:.0f}s",
        compared,
        rate,
        fields,
    )


def settings_of(deployment: Deployment) -> ParallelRunSettings:
    return deployment.spec.strategy.parallel_run or ParallelRunSettings()


def report_for(d: Decision, candidate: str) -> DiffReport | None:
    """The observed report of this candidate and attempt (a report of another revision or of
    an aborted attempt is not evidence)."""
    report = d.ctx.observed.diff_report
    name = report_name(d.deployment.metadata.name, candidate)
    if report is None or report.metadata.name != name:
        return None
    if report.metadata.annotations.get(ATTEMPT_ANNOTATION, "0") != str(d.status.attempt):
        return None
    return report


def _gate(d: Decision, new: ReplicaSet) -> None:
    """The candidate is up and mirrored to (confirmed since `ready_since`): judge it."""
    s = d.status
    if s.promote_full:  # `shoal rollout promote` (also after a PAUSE decision)
        bluegreen._switch(d, new, "RolloutPromoted", f"Revision {hash_of(new)} is now active")
        s.post_promotion_done = True
        d.state("Progressing", "switching the active port to the candidate")
        return
    settings = settings_of(d.deployment)
    started = s.ready_since or d.now
    decision = decide(settings, report_for(d, hash_of(new)), started, d.now)
    if decision.action is GateAction.ABORT:
        bluegreen._abort(d, decision.reason, d.by_hash.get(s.stable_hash or ""))
        return
    if decision.action is GateAction.PROMOTE:
        s.promote_full = True
        d.event("Normal", "ParallelRunPassed", decision.reason)
        _gate(d, new)
        return
    d.requeue(CHECK_EVERY_S)  # a PAUSE may still turn into an ABORT while comparing goes on
    if decision.action is GateAction.PAUSE:
        message = f"parallel run passed ({decision.reason}); `shoal rollout promote` switches"
        d.state("Paused", message, progressing("Unknown", "RolloutPaused", message))
        return
    message = f"parallel run of {hash_of(new)}: {decision.reason}"
    d.state("Progressing", message, progressing("True", "RolloutAnalysis", message))


def rollout(ctx: RolloutContext) -> RolloutStep:
    return bluegreen.rollout(ctx, gate=_gate)


class ParallelRun:
    """The `Strategy` object for `strategy.type: ParallelRun` (sizes as blue-green: the
    candidate comes up in full beside the primary)."""

    def max_surge(self, deployment: Deployment) -> int:
        return deployment.spec.replicas

    def max_unavailable(self, deployment: Deployment) -> int:
        return deployment.spec.replicas // 4

    def rollout(self, context: RolloutContext) -> RolloutStep:
        return rollout(context)

    def scale(self, context: RolloutContext) -> dict[str, int]:
        return bluegreen.scale(context)
