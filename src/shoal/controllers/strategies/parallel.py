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
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from shoal.api.diffreport import DiffReport, DiffReportStatus
from shoal.api.parallelrun import ParallelRunSettings

TOP_FIELDS = 3
# Reports older than this are called out in the reason (the differ is probably not running).
STALE_AFTER_S = 30.0


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
