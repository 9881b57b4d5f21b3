"""The progressive rollout view (pure lines) and the strategy verbs' edits."""

from __future__ import annotations

from typing import Any

import pytest
from cli_samples import NOW, deployment

from shoal.api.analysis import AnalysisRun
from shoal.api.replicaset import ReplicaSet
from shoal.api.rollout import ACTION_ANNOTATION
from shoal.cli.errors import CommandError
from shoal.cli.rollout_view import is_done, is_failed, render, request_action, rollout_lines

CANARY = {
    "type": "Canary",
    "canary": {
        "steps": [
            {"setWeight": 20},
            {"pause": {}},
            {"analysis": {"templates": [{"templateName": "success-rate"}]}},
            {"setHeaderRoute": {"match": [{"header": "x-group", "exact": "beta"}]}},
        ]
    },
}


def rollout(**fields: Any) -> dict[str, Any]:
    return {"observedGeneration": 1, "rollout": fields}


def replica_set(hash_: str, revision: int, ready: int) -> ReplicaSet:
    return ReplicaSet.from_json(
        {
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"web-{hash_}",
                "labels": {"app": "web", "pod-template-hash": hash_},
                "annotations": {"deployment.shoal.dev/revision": str(revision)},
            },
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"command": ["x"]}},
            },
            "status": {"availableReplicas": ready},
        }
    )


def run(name: str, phase: str, values: list[float]) -> AnalysisRun:
    measurements = [
        {
            "phase": "Successful",
            "startedAt": NOW.isoformat(),
            "finishedAt": NOW.isoformat(),
            "value": str(v),
        }
        for v in values
    ]
    return AnalysisRun.from_json(
        {
            "kind": "AnalysisRun",
            "metadata": {"name": name},
            "spec": {
                "metrics": [
                    {
                        "name": "success-rate",
                        "count": 3,
                        "interval": "5s",
                        "provider": {"envoy": {"metric": "successRate"}},
                    }
                ]
            },
            "status": {
                "phase": phase,
                "metricResults": [
                    {"name": "success-rate", "count": len(values), "measurements": measurements}
                ],
            },
        }
    )


def test_canary_view_shows_steps_weights_analysis_and_what_it_waits_for() -> None:
    d = deployment(
        rollout(
            phase="Progressing",
            stepIndex=2,
            analysisRun="web-new-3",
            message="step 3/4: analysis web-new-3 running",
            confirmedVersion=4,
            traffic={"version": 4, "stable": "old", "canary": "new", "weight": 20},
        ),
        strategy=CANARY,
    )
    sets = [replica_set("old", 1, 3), replica_set("new", 2, 1)]
    text = render(rollout_lines(d, sets, [run("web-new-3", "Running", [0.998, 0.997])]))
    assert "deployment/web  Canary  Progressing" in text
    assert "✓ setWeight 20  ✓ pause  ▶ analysis success-rate  · setHeaderRoute x-group=beta" in text
    assert "stable old (rev 1, 3 ready) 80%" in text
    assert "canary new (rev 2, 1 ready) 20%" in text
    assert "routing confirmed (v4)" in text
    assert "web-new-3 Running" in text
    assert "Successful 0.998, Successful 0.997  (2 of 3)" in text
    assert "waiting   step 3/4: analysis web-new-3 running" in text
    assert not is_done(d) and not is_failed(d)


def test_blue_green_view_and_final_states() -> None:
    blue = {"type": "BlueGreen", "blueGreen": {"previewPort": 9081}}
    d = deployment(
        rollout(
            phase="Paused",
            message="preview ready; switch with `shoal rollout promote`",
            newHash="new",
            traffic={"version": 2, "stable": "old", "canary": "new"},
        ),
        strategy=blue,
    )
    text = render(rollout_lines(d, [], []))
    assert "active old" in text and "preview (port 9081) new" in text
    assert "not yet confirmed (nodes at v0)" in text
    healthy = deployment(
        rollout(phase="Healthy", traffic={"version": 3, "stable": "new"}), strategy=blue
    )
    assert is_done(healthy)
    degraded = deployment(rollout(phase="Degraded", abortReason="x"), strategy=blue)
    assert is_failed(degraded)


def test_actions_annotate_once_per_request_and_only_progressive() -> None:
    d = deployment(strategy=CANARY)
    message = request_action(d, "promote-full", stamp="7")
    assert d.metadata.annotations[ACTION_ANNOTATION] == "promote-full 7"
    assert "promoted fully" in message
    request_action(d, "abort")
    first = d.metadata.annotations[ACTION_ANNOTATION]
    request_action(d, "abort")
    assert d.metadata.annotations[ACTION_ANNOTATION] != first  # a second abort is a new request
    with pytest.raises(CommandError, match="RollingUpdate; promote works on BlueGreen"):
        request_action(deployment(), "promote")
