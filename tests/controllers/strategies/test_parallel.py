"""The ParallelRun gate: never decide before minSamples, abort above maxDiffRate at once,
promote or pause below it once `duration` has passed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shoal.api.diffreport import (
    DiffExample,
    DiffReport,
    DiffReportSpec,
    DiffReportStatus,
    EndpointDiffs,
    FieldDiff,
)
from shoal.api.parallelrun import ParallelRunSettings
from shoal.controllers.strategies.parallel import GateAction, decide

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def settings(**fields: Any) -> ParallelRunSettings:
    base: dict[str, Any] = {"minSamples": 100, "maxDiffRate": 0.05, "duration": "10m"}
    return ParallelRunSettings.from_json({**base, **fields})


def status(compared: int, differing: int, **fields: Any) -> DiffReportStatus:
    example = DiffExample(
        request="GET /price",
        path="price",
        primary="19.99",
        candidate="20.0",
        primary_status=200,
        candidate_status=200,
    )
    endpoint = EndpointDiffs(
        endpoint="GET /price",
        compared=compared,
        differing=differing,
        fields=[FieldDiff(path="price", count=differing, example=example)] if differing else [],
    )
    return DiffReportStatus(
        compared=compared,
        differing=differing,
        diff_rate=differing / compared if compared else 0.0,
        endpoints=[endpoint],
        **fields,
    )


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def test_no_report_yet_continues() -> None:
    decision = decide(settings(), None, START, at(60))
    assert decision.action is GateAction.CONTINUE
    assert "first report" in decision.reason


@pytest.mark.parametrize("differing", [0, 99])
def test_never_decides_before_min_samples(differing: int) -> None:
    decision = decide(settings(), status(99, differing), START, at(60))
    assert decision.action is GateAction.CONTINUE
    assert "99 of 100" in decision.reason


def test_aborts_after_min_samples_above_max_rate_even_before_duration() -> None:
    decision = decide(settings(), status(100, 6), START, at(1))
    assert decision.action is GateAction.ABORT
    assert decision.top_fields == ("price",)
    assert decision.diff_rate == pytest.approx(0.06)
    assert "6.0% > 5.0%" in decision.reason
    assert "price (GET /price, 6 samples: 19.99 vs 20.0)" in decision.reason


def test_a_rate_equal_to_the_maximum_passes() -> None:
    decision = decide(settings(), status(100, 5), START, at(10))
    assert decision.action is GateAction.PROMOTE


def test_below_max_rate_waits_for_duration() -> None:
    decision = decide(settings(), status(500, 1), START, at(9))
    assert decision.action is GateAction.CONTINUE
    assert "60s more" in decision.reason


@pytest.mark.parametrize(
    ("then", "action"), [("promote", GateAction.PROMOTE), ("pause", GateAction.PAUSE)]
)
def test_after_duration_below_max_rate_does_what_then_says(then: str, action: GateAction) -> None:
    decision = decide(settings(then=then), status(500, 1), START, at(10))
    assert decision.action is action
    assert "0.2% <= 5.0%" in decision.reason


def test_without_duration_min_samples_alone_decides() -> None:
    relaxed = settings(duration=None)
    assert decide(relaxed, status(100, 0), START, START).action is GateAction.PROMOTE


def test_zero_max_rate_aborts_on_any_difference() -> None:
    strict = settings(maxDiffRate=0, duration=None)
    assert decide(strict, status(1000, 1), START, at(1)).action is GateAction.ABORT
    assert decide(strict, status(1000, 0), START, at(1)).action is GateAction.PROMOTE


def test_accepts_the_report_resource() -> None:
    report = DiffReport.new("web-abc", spec=DiffReportSpec(deployment="web"))
    report.status = status(200, 200)
    assert decide(settings(), report, START, at(1)).action is GateAction.ABORT


def test_a_stale_report_is_called_out_while_waiting() -> None:
    old = status(10, 0, last_update_time=at(0))
    decision = decide(settings(), old, START, at(5))
    assert decision.action is GateAction.CONTINUE
    assert "last reported 300s ago" in decision.reason
    fresh = status(10, 0, last_update_time=at(5))
    assert "last reported" not in decide(settings(), fresh, START, at(5)).reason
