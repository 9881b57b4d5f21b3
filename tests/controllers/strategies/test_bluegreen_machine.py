"""The BlueGreen step machine through the whole pure reconciler: preview, promotion (manual,
timed, analysed), the warm old version, instant undo, aborts."""

from __future__ import annotations

from typing import Any

from rollout_world import World, progressive_deployment, template


def bluegreen_world(**settings: Any) -> World:
    strategy = {"type": "BlueGreen", "blueGreen": {"previewPort": 9081, **settings}}
    world = World(progressive_deployment(strategy, replicas=2), [template("success-rate")])
    world.settle()
    return world


def test_the_new_version_waits_behind_the_preview_for_promote() -> None:
    world = bluegreen_world()
    assert world.rollout.phase == "Healthy"
    world.set_template("v2")
    world.settle(ready=False)
    assert world.sizes() == {"v1": 2, "v2": 2}  # the new version comes up in full
    assert world.traffic.canary is None  # the preview is routed only once it is ready
    world.settle()
    assert (world.traffic.stable, world.traffic.canary) == (world.hash("v1"), world.hash("v2"))
    assert world.rollout.phase == "Paused"
    assert "9081" in world.rollout.message
    assert "promote" in world.rollout.message


def test_promote_switches_the_active_port_and_keeps_the_old_version_warm() -> None:
    world = bluegreen_world(scaleDownDelaySeconds=30)
    world.set_template("v2")
    world.settle()
    world.act("promote")
    world.reconcile()
    assert (world.traffic.stable, world.traffic.canary) == (world.hash("v2"), None)
    world.settle()
    assert world.rollout.phase == "Healthy"
    assert world.sizes() == {"v1": 2, "v2": 2}
    world.advance(29)
    world.settle()
    assert world.sizes() == {"v1": 2, "v2": 2}
    world.advance(2)
    world.settle()
    assert world.sizes() == {"v1": 0, "v2": 2}


def test_undo_within_the_delay_switches_back_at_once_without_new_pods() -> None:
    world = bluegreen_world()
    world.set_template("v2")
    world.settle()
    world.act("promote")
    world.settle()
    created = world.created
    world.advance(10)
    world.set_template("v1")
    world.reconcile()
    assert world.traffic.stable == world.hash("v1")
    world.settle()
    assert world.created == created
    assert world.sizes() == {"v1": 2, "v2": 2}
    assert world.rollout.phase == "Healthy"


def test_auto_promotion_after_the_preview_was_ready_long_enough() -> None:
    world = bluegreen_world(autoPromotionSeconds=20)
    world.set_template("v2")
    world.settle()
    assert world.traffic.stable == world.hash("v1")
    plan = world.plans[-1]
    assert plan.requeue_after is not None and plan.requeue_after <= 20
    world.advance(21)
    world.settle()
    assert world.traffic.stable == world.hash("v2")


def test_a_failed_pre_promotion_analysis_aborts_and_hides_the_preview() -> None:
    world = bluegreen_world(
        prePromotionAnalysis={"templates": [{"templateName": "success-rate"}]}, autoRollback=True
    )
    world.set_template("v2")
    world.settle()
    assert world.rollout.analysis_run is not None
    world.finish_run("Failed", "metric success-rate failed: values 0.5")
    world.settle(confirm=False)
    assert world.traffic.canary is None  # the preview port serves the active version again
    assert world.sizes()["v2"] == 2  # not before Envoy confirmed it
    world.settle()
    assert world.sizes() == {"v1": 2, "v2": 0}
    assert world.deployment.spec.template.spec.command == ["serve", "v1"]
    assert world.rollout.phase == "Degraded"
    assert "0.5" in world.rollout.message


def test_a_failed_post_promotion_analysis_switches_back_to_the_held_version() -> None:
    world = bluegreen_world(
        postPromotionAnalysis={"templates": [{"templateName": "success-rate"}]},
        scaleDownDelaySeconds=5,
    )
    world.set_template("v2")
    world.settle()
    world.act("promote")
    world.settle()
    assert world.traffic.stable == world.hash("v2")
    world.advance(60)  # well past the delay: the old version is held for the verdict
    world.settle()
    assert world.sizes() == {"v1": 2, "v2": 2}
    world.finish_run("Failed", "p99 too high")
    world.reconcile()
    assert world.traffic.stable == world.hash("v1")
    world.settle()
    assert world.sizes() == {"v1": 2, "v2": 0}
    assert world.rollout.phase == "Degraded"


def test_abort_before_promotion_and_retry() -> None:
    world = bluegreen_world()
    world.set_template("v2")
    world.settle()
    world.act("abort")
    world.settle(confirm=False)
    assert world.traffic.canary is None
    assert world.sizes() == {"v1": 2, "v2": 2}  # not before Envoy confirmed the preview moved
    world.settle()
    assert world.sizes() == {"v1": 2, "v2": 0}
    assert world.rollout.phase == "Degraded"
    world.act("promote")  # ignored while aborted
    world.settle()
    assert world.traffic.stable == world.hash("v1")
    world.act("retry")
    world.settle()
    assert world.sizes() == {"v1": 2, "v2": 2}
    assert world.rollout.phase == "Paused"


def test_a_paused_deployment_does_not_even_start_the_new_version() -> None:
    world = bluegreen_world()
    world.deployment.spec.paused = True
    world.set_template("v2")
    world.settle()
    assert world.sizes() == {"v1": 2}
    assert world.rollout.phase == "Paused"
    world.deployment.spec.paused = False
    world.settle()
    assert world.sizes() == {"v1": 2, "v2": 2}


def test_switching_from_rolling_update_keeps_the_running_version_active() -> None:
    world = World(progressive_deployment({"type": "RollingUpdate"}, replicas=2))
    world.settle()
    changed = world.deployment.model_copy(deep=True)
    changed.spec.strategy = progressive_deployment(
        {"type": "BlueGreen", "blueGreen": {}}, replicas=2
    ).spec.strategy
    world.deployment = changed
    world.set_template("v2")
    world.settle()
    assert (world.traffic.stable, world.traffic.canary) == (world.hash("v1"), world.hash("v2"))
    assert world.sizes() == {"v1": 2, "v2": 2}
