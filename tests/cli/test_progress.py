"""Judging a rollout from a Deployment's status (kubectl's rules)."""

from __future__ import annotations

from cli_samples import deployment

from shoal.cli.progress import rollout_state


def test_not_yet_observed() -> None:
    state = rollout_state(deployment(status={"observedGeneration": 1}, generation=2), "web")
    assert not state.done and not state.failed
    assert "spec update to be observed" in state.message


def test_waiting_for_updates_then_old_replicas_then_availability() -> None:
    base = {"observedGeneration": 1}
    state = rollout_state(deployment(status={**base, "updatedReplicas": 1, "replicas": 3}), "web")
    assert "1 out of 3 new replicas have been updated" in state.message
    state = rollout_state(deployment(status={**base, "updatedReplicas": 3, "replicas": 4}), "web")
    assert "1 old replicas are pending termination" in state.message
    state = rollout_state(
        deployment(status={**base, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2}),
        "web",
    )
    assert "2 of 3 updated replicas are available" in state.message
    assert (state.ready, state.desired) == (2, 3)
    assert not state.done


def test_complete() -> None:
    status = {"observedGeneration": 1, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}
    state = rollout_state(deployment(status=status), "web")
    assert state.done and not state.failed
    assert state.message == 'deployment "web" successfully rolled out'


def test_progress_deadline_exceeded_is_a_failure() -> None:
    status = {
        "observedGeneration": 1,
        "updatedReplicas": 1,
        "replicas": 4,
        "conditions": [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet web-x has timed out progressing.",
            }
        ],
    }
    state = rollout_state(deployment(status=status), "web")
    assert state.failed
    assert "exceeded its progress deadline" in state.message
    assert "timed out progressing" in state.message


def test_paused_and_deleted() -> None:
    state = rollout_state(deployment(status={"observedGeneration": 1}, paused=True), "web")
    assert "paused" in state.message and not state.done
    state = rollout_state(None, "web")
    assert state.failed and "not found" in state.message


# -- BlueGreen and Canary: judged by the step machine -------------------------------------------
CANARY = {
    "type": "Canary",
    "canary": {
        "steps": [
            {"setWeight": 20},
            {"pause": {}},
            {"analysis": {"templates": [{"templateName": "success-rate"}]}},
            {"pause": {"duration": "30s"}},
        ]
    },
}


def progressive(
    rollout: dict[str, object] | None, condition: tuple[str, str] | None = None, **status: object
) -> dict[str, object]:
    """A progressive Deployment's status; `condition`: its Progressing (status, reason)."""
    doc: dict[str, object] = {"observedGeneration": 1, "replicas": 4, "updatedReplicas": 1,
                              "availableReplicas": 4, "rollout": rollout, **status}  # fmt: skip
    if condition is not None:
        doc["conditions"] = [
            {"type": "Progressing", "status": condition[0], "reason": condition[1]}
        ]
    return doc


def test_a_canary_waiting_for_promote_is_paused_at_its_step_not_an_endless_wait() -> None:
    rollout = {"phase": "Paused", "stepIndex": 1, "newHash": "h2", "stableHash": "h1",
               "message": "step 2/4: paused; continue with `shoal rollout promote`"}  # fmt: skip
    state = rollout_state(
        deployment(status=progressive(rollout, ("Unknown", "RolloutPaused")), strategy=CANARY),
        "web",
    )
    assert state.done and state.paused and not state.failed
    assert "paused at step 2/4 (pause)" in state.message
    assert "`shoal rollout promote deployment/web`" in state.message
    # An inconclusive analysis waits for a person too, and says why.
    rollout |= {"stepIndex": 2, "message": "step 3/4: analysis web-h2-3 inconclusive (x)"}
    state = rollout_state(
        deployment(status=progressive(rollout, ("Unknown", "RolloutPaused")), strategy=CANARY),
        "web",
    )
    assert state.paused and "step 3/4 (analysis success-rate)" in state.message
    assert "inconclusive (x)" in state.message


def test_a_timed_pause_or_a_running_analysis_keeps_waiting() -> None:
    for index, condition, message in (
        (3, ("True", "RolloutPaused"), "step 4/4: pausing 12s more"),
        (2, ("True", "RolloutAnalysis"), "step 3/4: analysis web-h2-3 running"),
    ):
        rollout = {"phase": "Paused" if index == 3 else "Progressing", "stepIndex": index,
                   "newHash": "h2", "message": message}  # fmt: skip
        state = rollout_state(
            deployment(status=progressive(rollout, condition), strategy=CANARY), "web"
        )
        assert not (state.done or state.paused or state.failed)
        assert state.message.endswith(message)


def test_a_blue_green_preview_waiting_for_promote_is_paused() -> None:
    message = "preview on port 9081 ready; switch with `shoal rollout promote`"
    rollout = {"phase": "Paused", "stepIndex": 1, "newHash": "h2", "message": message}
    bluegreen = {"type": "BlueGreen", "blueGreen": {"previewPort": 9081}}
    state = rollout_state(
        deployment(status=progressive(rollout, ("Unknown", "RolloutPaused")), strategy=bluegreen),
        "web",
    )
    assert state.paused and state.done
    assert "rollout is paused, waiting for `shoal rollout promote" in state.message
    assert "preview on port 9081 ready" in state.message


def test_degraded_fails_with_its_reason_and_healthy_is_done() -> None:
    rollout = {"phase": "Degraded", "aborted": True, "stableHash": "h1",
               "abortReason": "analysis web-h2-3 failed: success-rate 0.70 < 0.95"}  # fmt: skip
    state = rollout_state(deployment(status=progressive(rollout), strategy=CANARY), "web")
    assert state.failed and not state.done
    assert "Degraded: analysis web-h2-3 failed: success-rate 0.70 < 0.95" in state.message
    assert "shoal rollout retry deployment/web" in state.message
    healthy = {"phase": "Healthy", "stableHash": "h2", "message": "revision h2 is stable"}
    done = rollout_state(
        deployment(status=progressive(healthy, updatedReplicas=3), strategy=CANARY), "web"
    )
    assert done.done and not done.paused and "h2 serves all traffic" in done.message
    # Healthy, but the new template has no ReplicaSet yet: not done.
    early = rollout_state(deployment(status=progressive(healthy), strategy=CANARY), "web")
    assert not early.done
    unseen = rollout_state(deployment(status=progressive(None), strategy=CANARY), "web")
    assert "waiting for the controller" in unseen.message and not unseen.done
