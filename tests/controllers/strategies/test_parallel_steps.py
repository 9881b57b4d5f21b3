"""The ParallelRun step machine through the whole pure reconciler: the candidate comes up in
full and is mirrored to (live traffic stays on the primary), the gate on the differ's report
aborts, promotes or pauses, and promotion is blue-green's confirmed switch."""

from __future__ import annotations

from typing import Any

from rollout_world import World, progressive_deployment

from shoal.api.diffreport import (
    DiffExample,
    DiffReport,
    DiffReportSpec,
    DiffReportStatus,
    EndpointDiffs,
    FieldDiff,
    report_name,
)
from shoal.api.meta import ObjectMeta
from shoal.controllers.strategies.parallel import ATTEMPT_ANNOTATION


def parallel_world(**settings: Any) -> World:
    strategy = {
        "type": "ParallelRun",
        "parallelRun": {"minSamples": 100, "maxDiffRate": 0.05, "duration": "60s", **settings},
    }
    world = World(progressive_deployment(strategy, replicas=2))
    world.settle()
    return world


def report_of(world: World, version: str, compared: int, differing: int) -> DiffReport:
    example = DiffExample(
        request="GET /price",
        path="price",
        primary="19.99",
        candidate="20.0",
        primary_status=200,
        candidate_status=200,
    )
    fields = [FieldDiff(path="price", count=differing, example=example)] if differing else []
    candidate = world.hash(version)
    return DiffReport(
        kind="DiffReport",
        metadata=ObjectMeta(name=report_name("web", candidate), namespace="default"),
        spec=DiffReportSpec(deployment="web", candidate_revision=candidate),
        status=DiffReportStatus(
            compared=compared,
            differing=differing,
            diff_rate=differing / compared if compared else 0.0,
            endpoints=[
                EndpointDiffs(
                    endpoint="GET /price", compared=compared, differing=differing, fields=fields
                )
            ],
        ),
    )


def comparing_world(**settings: Any) -> World:
    world = parallel_world(**settings)
    world.set_template("v2")
    world.settle()
    return world


def test_the_candidate_comes_up_in_full_and_is_compared_while_live_traffic_stays() -> None:
    world = parallel_world()
    assert world.rollout.phase == "Healthy"
    world.set_template("v2")
    world.settle(ready=False)
    assert world.sizes() == {"v1": 2, "v2": 2}
    assert world.traffic.canary is None  # mirroring starts once the candidate is ready
    world.settle()
    assert (world.traffic.stable, world.traffic.canary) == (world.hash("v1"), world.hash("v2"))
    assert world.traffic.weight == 0
    assert world.rollout.phase == "Progressing"
    assert "waiting for the differ" in world.rollout.message
    assert world.plans[-1].requeue_after is not None and world.plans[-1].requeue_after <= 1.0


def test_a_report_of_another_revision_is_no_evidence() -> None:
    world = comparing_world()
    stale = report_of(world, "v1", compared=500, differing=500)
    world.diff_report = stale
    world.advance(120)
    world.settle()
    assert not world.rollout.aborted
    assert world.rollout.phase == "Progressing"


def test_a_high_diff_rate_aborts_with_the_field_path_and_scales_the_candidate_down() -> None:
    world = comparing_world()
    world.diff_report = report_of(world, "v2", compared=120, differing=110)
    world.reconcile()
    assert world.rollout.aborted
    assert world.traffic.canary is None  # mirroring stops in the same reconcile
    assert world.rollout.phase == "Degraded"
    assert "price" in (world.rollout.abort_reason or "")
    assert "19.99 vs 20.0" in world.rollout.message
    assert "RolloutAborted" in world.reasons()
    world.settle()
    assert world.sizes() == {"v1": 2, "v2": 0}
    assert world.traffic.stable == world.hash("v1")


def test_never_decides_before_min_samples() -> None:
    world = comparing_world()
    world.diff_report = report_of(world, "v2", compared=99, differing=99)
    world.advance(120)
    world.settle()
    assert not world.rollout.aborted
    assert "compared 99 of 100" in world.rollout.message


def test_a_low_diff_rate_promotes_after_the_duration_with_a_confirmed_switch() -> None:
    world = comparing_world()  # the primary stays warm 30 s, as in blue-green
    world.diff_report = report_of(world, "v2", compared=300, differing=1)
    world.advance(30)
    world.settle()
    assert world.rollout.phase == "Progressing"  # 30 s of 60 s
    assert world.traffic.stable == world.hash("v1")
    world.advance(31)
    world.reconcile()
    assert (world.traffic.stable, world.traffic.canary) == (world.hash("v2"), None)
    assert "ParallelRunPassed" in world.reasons()
    assert "RolloutPromoted" in world.reasons()
    world.settle()
    assert world.rollout.phase == "Healthy"
    assert world.sizes() == {"v1": 2, "v2": 2}  # the primary stays warm for an undo
    world.advance(31)
    world.settle()
    assert world.sizes() == {"v1": 0, "v2": 2}


def test_then_pause_waits_for_promote() -> None:
    world = comparing_world(then="pause")
    world.diff_report = report_of(world, "v2", compared=300, differing=0)
    world.advance(61)
    world.settle()
    assert world.rollout.phase == "Paused"
    assert "shoal rollout promote" in world.rollout.message
    assert world.traffic.stable == world.hash("v1")
    world.act("promote")
    world.settle()
    assert world.rollout.phase == "Healthy"
    assert world.traffic.stable == world.hash("v2")


def test_a_pause_still_aborts_when_the_rate_goes_up_meanwhile() -> None:
    world = comparing_world(then="pause")
    world.diff_report = report_of(world, "v2", compared=300, differing=0)
    world.advance(61)
    world.settle()
    world.diff_report = report_of(world, "v2", compared=400, differing=100)
    world.settle()
    assert world.rollout.aborted
    assert world.sizes() == {"v1": 2, "v2": 0}


def test_user_abort_stops_the_comparison() -> None:
    world = comparing_world()
    world.act("abort")
    world.settle()
    assert world.rollout.aborted
    assert world.traffic.canary is None
    assert world.sizes() == {"v1": 2, "v2": 0}


def test_a_retried_run_is_judged_on_its_own_report_only() -> None:
    world = comparing_world()
    world.diff_report = report_of(world, "v2", compared=120, differing=110)
    world.settle()
    assert world.rollout.aborted
    world.act("retry")
    world.settle()
    assert not world.rollout.aborted  # the aborted attempt's report is no evidence
    assert world.rollout.attempt == 1
    assert world.traffic.canary == world.hash("v2")
    assert "waiting for the differ" in world.rollout.message
    fresh = report_of(world, "v2", compared=300, differing=0)
    fresh.metadata.annotations[ATTEMPT_ANNOTATION] = "1"
    world.diff_report = fresh
    world.advance(61)
    world.settle()
    assert world.rollout.phase == "Healthy"
    assert world.traffic.stable == world.hash("v2")
