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
