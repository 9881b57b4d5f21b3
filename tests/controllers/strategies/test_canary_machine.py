"""The Canary step machine through the whole pure reconciler: steps, confirmed weights,
analysis verdicts, abort/retry/autoRollback, promote, instant undo to a warm version."""

from __future__ import annotations

from typing import Any

from rollout_world import World, progressive_deployment, template

from shoal.api.meta import find_condition

STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {}},
    {"analysis": {"templates": [{"templateName": "success-rate"}]}},
    {"setWeight": 50},
]


def canary_world(steps: list[dict[str, Any]] = STEPS, **canary: Any) -> World:
    d = progressive_deployment({"type": "Canary", "canary": {"steps": steps, **canary}})
    world = World(d, [template("success-rate")])
    world.settle()
    return world


def test_the_first_revision_becomes_stable_without_steps() -> None:
    world = canary_world()
    assert world.sizes() == {"v1": 5}
    assert world.rollout.phase == "Healthy"
    assert world.traffic.stable == world.hash("v1")
    assert world.traffic.canary is None
    assert world.rollout.step_index is None


def test_a_good_canary_walks_every_step_and_is_promoted() -> None:
    world = canary_world()
    world.set_template("v2")
    world.settle()
    # step 1 done (20 % confirmed), paused at step 2 waiting for promote
    assert world.sizes() == {"v1": 5, "v2": 1}
    assert (world.traffic.canary, world.traffic.weight) == (world.hash("v2"), 20)
    assert world.rollout.phase == "Paused"
    assert world.rollout.step_index == 1
    progressing = find_condition(world.deployment.status.conditions, "Progressing")
    assert progressing is not None and progressing.reason == "RolloutPaused"

    world.act("promote")
    world.settle()
    run = world.runs[world.rollout.analysis_run or ""]
    args = run.spec.arg_values()
    assert args["canary-hash"] == world.hash("v2")
    assert args["stable-hash"] == world.hash("v1")
    assert world.rollout.phase == "Progressing"

    world.finish_run("Successful")
    world.settle()
    # promoted: v2 stable at full size, all traffic, v1 kept warm
    assert world.traffic.stable == world.hash("v2")
    assert world.traffic.canary is None
    assert world.sizes() == {"v1": 5, "v2": 5}
    assert world.rollout.phase == "Healthy"
    assert "RolloutCompleted" in world.reasons()

    world.advance(31)
    world.settle()
    assert world.sizes() == {"v1": 0, "v2": 5}


def test_a_weight_is_routed_only_once_the_canary_pods_are_available() -> None:
    world = canary_world([{"setWeight": 60}, {"pause": {}}])
    world.set_template("v2")
    world.settle(ready=False)
    assert world.sizes() == {"v1": 5, "v2": 3}  # ceil(5 * 60 %)
    assert world.traffic.weight == 0
    assert "waiting for canary pods" in world.rollout.message
    world.make_available("v2")
    world.settle()
    assert world.traffic.weight == 60


def test_a_step_waits_for_every_node_to_confirm_the_weight() -> None:
    world = canary_world([{"setWeight": 20}, {"setWeight": 40}, {"pause": {}}])
    world.set_template("v2")
    world.settle(confirm=False)
    assert world.traffic.weight == 20
    assert world.rollout.step_index == 0
    assert "confirm" in world.rollout.message
    world.settle()
    assert world.traffic.weight == 40
    assert world.rollout.step_index == 2


def test_a_failed_analysis_aborts_weight_first_then_scales_down() -> None:
    world = canary_world()
    world.set_template("v2")
    world.settle()
    world.act("promote")
    world.settle()
    world.finish_run("Failed", "metric success-rate failed: values 0.7, 0.69")
    world.reconcile()
    assert world.traffic.weight == 0  # in the reconcile that saw the verdict
    world.settle(confirm=False)
    assert world.traffic.weight == 0
    assert world.traffic.canary is None
    assert world.sizes()["v2"] == 1  # not before Envoy confirmed it gets no traffic
    assert world.rollout.phase == "Degraded"
    assert "success-rate" in (world.rollout.abort_reason or "")
    assert "0.7" in (world.rollout.abort_reason or "")
    progressing = find_condition(world.deployment.status.conditions, "Progressing")
    assert progressing is not None
    assert (progressing.status, progressing.reason) == ("False", "RolloutAborted")
    assert ("Warning", "RolloutAborted") in [(t, r) for t, r, _ in world.events]
    world.settle()
    assert world.sizes() == {"v1": 5, "v2": 0}
    assert world.deployment.spec.template.spec.command == ["serve", "v2"]  # no autoRollback


def test_retry_restarts_the_steps_with_fresh_run_names() -> None:
    world = canary_world([{"analysis": {"templates": [{"templateName": "success-rate"}]}}])
    world.set_template("v2")
    world.settle()
    first = world.rollout.analysis_run
    world.finish_run("Failed", "bad")
    world.settle()
    world.act("retry")
    world.settle()
    assert world.rollout.phase == "Progressing"
    assert world.rollout.analysis_run not in (None, first)
    assert world.sizes()["v2"] == 1


def test_auto_rollback_reverts_the_spec_to_the_stable_template() -> None:
    world = canary_world(autoRollback=True)
    world.set_template("v2")
    world.settle()
    world.act("abort")
    world.settle()
    assert world.deployment.spec.template.spec.command == ["serve", "v1"]
    assert world.sizes() == {"v1": 5, "v2": 0}
    assert world.rollout.phase == "Degraded"
    assert "AutoRollback" in world.reasons()


def test_promote_full_skips_the_remaining_steps() -> None:
    world = canary_world()
    world.set_template("v2")
    world.settle()
    world.act("promote-full")
    world.settle()
    assert world.traffic.stable == world.hash("v2")
    assert not [r for r in world.runs.values()]  # the analysis step never ran


def test_header_route_step_sends_matching_requests_to_the_canary() -> None:
    route = {"setHeaderRoute": {"match": [{"header": "X-User-Group", "exact": "beta"}]}}
    world = canary_world([route, {"pause": {}}])
    world.set_template("v2")
    world.settle()
    assert [(m.header, m.exact) for m in world.traffic.header_routes] == [("x-user-group", "beta")]
    assert world.traffic.canary == world.hash("v2")
    assert world.traffic.weight == 0


def test_a_missing_template_aborts_with_its_name() -> None:
    world = canary_world([{"analysis": {"templates": [{"templateName": "gone"}]}}])
    world.set_template("v2")
    world.settle()
    assert world.rollout.phase == "Degraded"
    assert "gone" in (world.rollout.abort_reason or "")


def test_undo_within_the_delay_switches_back_without_new_pods() -> None:
    world = canary_world([{"setWeight": 50}])
    world.set_template("v2")
    world.settle()
    assert world.traffic.stable == world.hash("v2")
    created = world.created
    world.set_template("v1")
    world.reconcile()
    assert world.traffic.stable == world.hash("v1")  # in the very first reconcile
    assert world.created == created
    world.settle()
    assert world.sizes() == {"v1": 5, "v2": 5}  # v2 is now the warm one
    assert "SwitchedToWarmRevision" in world.reasons()


def test_a_newer_version_mid_rollout_replaces_the_canary() -> None:
    world = canary_world()
    world.set_template("v2")
    world.settle()
    world.set_template("v3")
    world.settle()
    assert world.traffic.canary == world.hash("v3")
    assert world.sizes() == {"v1": 5, "v2": 0, "v3": 1}


def test_paused_deployment_keeps_sizes_and_does_not_advance() -> None:
    world = canary_world([{"setWeight": 40}, {"setWeight": 80}])
    world.set_template("v2")
    world.reconcile()
    world.make_available()
    world.deployment.spec.paused = True
    world.settle()
    assert world.traffic.weight == 0
    assert world.sizes() == {"v1": 5, "v2": 1}


def test_no_node_means_nothing_to_wait_for() -> None:
    world = canary_world([{"setWeight": 30}])
    world.node_version = None
    world.set_template("v2")
    world.settle(confirm=False)
    assert world.traffic.stable == world.hash("v2")


def test_abort_works_while_paused_and_nothing_advances() -> None:
    world = canary_world([{"setWeight": 20}, {"setWeight": 60}, {"pause": {}}])
    world.set_template("v2")
    world.reconcile()
    world.make_available()
    world.confirm()
    world.deployment.spec.paused = True
    world.settle()
    assert world.rollout.phase == "Paused"
    assert world.traffic.weight == 0
    world.act("abort")
    world.settle()
    assert world.rollout.phase == "Degraded"
    assert world.sizes() == {"v1": 5, "v2": 0}


def test_switching_from_rolling_update_adopts_the_running_version_as_stable() -> None:
    d = progressive_deployment({"type": "RollingUpdate"})
    world = World(d, [template("success-rate")])
    world.settle()
    assert world.sizes() == {"v1": 5}
    changed = world.deployment.model_copy(deep=True)
    changed.spec.strategy = progressive_deployment(
        {"type": "Canary", "canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}
    ).spec.strategy
    world.deployment = changed
    world.set_template("v2")
    world.settle()
    assert world.sizes() == {"v1": 5, "v2": 1}
    assert (world.traffic.stable, world.traffic.canary) == (world.hash("v1"), world.hash("v2"))
    assert world.traffic.weight == 20
    assert world.rollout.phase == "Paused"
