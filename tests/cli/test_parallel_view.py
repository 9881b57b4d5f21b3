"""The ParallelRun rows of `shoal rollout status` (pure): live vs mirrored, the gate, the
report's tally and top differing fields."""

from __future__ import annotations

from cli_samples import NOW
from cli_samples import deployment as sample_deployment

from shoal.api.deployment import Deployment
from shoal.api.diffreport import (
    DiffExample,
    DiffReport,
    DiffReportSpec,
    DiffReportStatus,
    EndpointDiffs,
    FieldDiff,
)
from shoal.api.meta import ObjectMeta
from shoal.api.rollout import RolloutStatus, TrafficRouting
from shoal.cli.parallel_view import parallel_rows
from shoal.cli.rollout_view import render, rollout_lines


def deployment(canary: str | None, aborted: bool = False) -> Deployment:
    strategy = {
        "type": "ParallelRun",
        "parallelRun": {"mirrorPercent": 50, "minSamples": 200, "duration": "5m"},
    }
    d = sample_deployment(strategy=strategy)
    d.status.rollout = RolloutStatus(
        stable_hash="old",
        new_hash="new",
        aborted=aborted,
        traffic=TrafficRouting(version=2, stable="old", canary=canary),
        confirmed_version=2,
    )
    return d


def report() -> DiffReport:
    example = DiffExample(
        request="GET /price",
        path="price",
        primary="19.99",
        candidate="20.0",
        primary_status=200,
        candidate_status=200,
    )
    return DiffReport(
        kind="DiffReport",
        metadata=ObjectMeta(name="web-new", namespace="default"),
        spec=DiffReportSpec(deployment="web", candidate_revision="new"),
        status=DiffReportStatus(
            compared=100,
            differing=40,
            diff_rate=0.4,
            endpoints=[
                EndpointDiffs(
                    endpoint="GET /price",
                    compared=100,
                    differing=40,
                    fields=[FieldDiff(path="price", count=40, example=example)],
                )
            ],
        ),
    )


def test_comparing_shows_mirroring_the_gate_and_the_top_fields() -> None:
    text = render(rollout_lines(deployment("new"), [], [], report()))
    assert "live 100% -> old; 50% of GET,HEAD mirrored to the differ (candidate new)" in text
    assert "diff rate <= 1% after 200 samples and 5m -> promote" in text
    assert "compared 100, differing 40 (40.0%)" in text
    assert "price (GET /price, 40 samples: 19.99 vs 20.0)" in text
    assert "compared new" in text


def test_aborted_or_waiting_runs_say_so() -> None:
    rows = dict(parallel_rows(deployment(None, aborted=True), None, NOW))
    assert rows["compare"] == "live 100% -> old; not mirroring (candidate new)"
    assert rows["diffs"] == "no report yet (the differ is starting)"
    text = render(rollout_lines(deployment(None, aborted=True), [], []))
    assert "compared -" in text
