"""Promises of both progressive strategies under any order of events (hypothesis): a version
is never scaled down while the routing every node has confirmed may still send it traffic,
and with ready pods and confirming nodes every rollout ends Healthy or Degraded."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from rollout_world import World, progressive_deployment, template

from shoal.api.rollout import TrafficRouting
from shoal.controllers.strategies.progressive import hash_of

EVENTS = st.lists(
    st.sampled_from(
        [
            "ready",
            "confirm",
            "confirm",
            "ready-confirm",
            "ready-confirm",
            "ready-confirm",
            "advance",
            "v2",
            "v3",
            "v1",
            "promote",
            "promote-full",
            "abort",
            "retry",
            "run-ok",
            "run-bad",
            "wait",
        ]
    ),
    max_size=40,
)
STRATEGIES: list[dict[str, Any]] = [
    {
        "type": "Canary",
        "canary": {
            "steps": [
                {"setWeight": 20},
                {"pause": {"duration": 5}},
                {"analysis": {"templates": [{"templateName": "success-rate"}]}},
                {"setHeaderRoute": {"match": [{"header": "x-beta", "exact": "1"}]}},
                {"setWeight": 60},
                {"pause": {}},
            ],
            "scaleDownDelaySeconds": 10,
        },
    },
    {
        "type": "BlueGreen",
        "blueGreen": {
            "prePromotionAnalysis": {"templates": [{"templateName": "success-rate"}]},
            "postPromotionAnalysis": {"templates": [{"templateName": "success-rate"}]},
            "scaleDownDelaySeconds": 10,
        },
    },
]


def routed(traffic: TrafficRouting) -> set[str]:
    return {h for h in (traffic.stable, traffic.canary) if h}


def apply(world: World, event: str) -> None:
    if event in ("ready", "ready-confirm"):
        world.make_available()
    if event in ("confirm", "ready-confirm"):
        world.confirm()
    if event == "advance":
        world.advance(6)
    elif event in ("v1", "v2", "v3"):
        world.set_template(event)
    elif event.startswith("run-"):
        name = world.rollout.analysis_run
        if name and name in world.runs:
            world.finish_run("Successful" if event == "run-ok" else "Failed", "measured")
    elif event in ("promote", "promote-full", "abort", "retry"):
        world.act(event)


def play(world: World, events: list[str]) -> None:
    """Each event is followed by a reconcile, as the controller's watch would cause."""
    confirmed: dict[int, TrafficRouting] = {world.traffic.version: world.traffic.model_copy()}
    for event in events:
        apply(world, event)
        before = {rs.metadata.name: rs.spec.replicas for rs in world.sets.values()}
        world.reconcile()
        wanted = world.traffic
        confirmed.setdefault(wanted.version, wanted.model_copy())
        node_sees = confirmed[world.node_version or 0]
        for rs in world.sets.values():
            if before.get(rs.metadata.name, 0) > 0 and rs.spec.replicas == 0:
                assert hash_of(rs) not in routed(node_sees), "scaled down while routed"
                assert hash_of(rs) not in routed(wanted), "scaled down while wanted"
        assert 0 <= wanted.weight <= 100
        assert wanted.canary is None or wanted.stable is not None, "a canary but no stable"


@settings(max_examples=300, deadline=None)
@given(events=EVENTS, which=st.sampled_from([0, 1]))
@example(events=["v2", "ready-confirm", "ready-confirm", "abort"], which=0)
@example(events=["v2", "ready-confirm", "ready-confirm", "v3", "ready"], which=0)
@example(events=["v2", "ready-confirm", "ready-confirm", "run-bad", "confirm"], which=1)
def test_never_scaled_down_while_routed_and_always_settles(events: list[str], which: int) -> None:
    world = World(progressive_deployment(STRATEGIES[which], replicas=3), [template("success-rate")])
    world.settle()
    play(world, events)
    # Then the world behaves: pods come up, nodes confirm, analyses pass, time passes.
    for _ in range(12):
        world.settle()
        name = world.rollout.analysis_run
        if name and name in world.runs and not world.runs[name].done:
            world.finish_run("Successful")
        if world.rollout.phase == "Paused":
            world.act("promote")
        world.advance(6)
    world.settle()
    assert world.rollout.phase in ("Healthy", "Degraded"), world.rollout.message
    if world.rollout.phase == "Healthy":
        active = [rs for rs in world.sets.values() if rs.spec.replicas > 0]
        assert len(active) == 1
        assert world.traffic.canary is None
