"""Which finished AnalysisRuns the history limit deletes (pure), and where the limit is read.
The deletion through the API is tested with the real controllers in test_rollout_controller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shoal.api.analysis import AnalysisRun
from shoal.api.deployment import Deployment
from shoal.api.errors import causes_from_validation
from shoal.controllers.analysis import history_limit, runs_to_prune

START = datetime(2026, 1, 1, tzinfo=UTC)


def run(name: str, minute: int, phase: str) -> AnalysisRun:
    return AnalysisRun.from_json(
        {
            "kind": "AnalysisRun",
            "metadata": {
                "name": name,
                "namespace": "default",
                "creationTimestamp": (START + timedelta(minutes=minute)).isoformat(),
            },
            "spec": {"metrics": [{"name": "m", "provider": {"exec": {"command": ["true"]}}}]},
            "status": {"phase": phase},
        }
    )


def names(runs: list[AnalysisRun]) -> list[str]:
    return [r.metadata.name for r in runs]


def test_the_oldest_finished_runs_beyond_the_limit_go() -> None:
    runs = [run(f"r{i}", i, "Successful") for i in range(6)]
    assert names(runs_to_prune(runs, 5, set())) == ["r0"]
    assert names(runs_to_prune(list(reversed(runs)), 2, set())) == ["r3", "r2", "r1", "r0"]
    assert runs_to_prune(runs, 6, set()) == []


def test_running_runs_and_the_current_one_are_never_deleted() -> None:
    runs = [
        run("old-running", 0, "Running"),
        run("old-pending", 1, "Pending"),
        run("old-failed", 2, "Failed"),
        run("current", 3, "Successful"),
        run("newer", 4, "Inconclusive"),
        run("newest", 5, "Terminated"),
    ]
    # Limit 1: only the newest finished run counts as kept history; the rollout's current
    # run stays anyway, and running ones are not finished history at all.
    assert names(runs_to_prune(runs, 1, {"current"})) == ["newer", "old-failed"]
    # A limit under 1 keeps 1: the newest run may hold the verdict the rollout reads next.
    assert "newest" not in names(runs_to_prune(runs, 0, set()))


def deployment(strategy: dict[str, object]) -> Deployment:
    return Deployment.from_json(
        {
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"command": ["x"]}},
                "strategy": strategy,
            },
        }
    )


def test_the_limit_comes_from_the_strategy_with_a_default_of_5() -> None:
    canary = {"type": "Canary", "canary": {"analysisRunHistoryLimit": 2}}
    assert history_limit(deployment(canary)) == 2
    bluegreen = {"type": "BlueGreen", "blueGreen": {"analysisRunHistoryLimit": 9}}
    assert history_limit(deployment(bluegreen)) == 9
    assert history_limit(deployment({"type": "Canary", "canary": {}})) == 5
    assert history_limit(deployment({"type": "RollingUpdate"})) == 5


def test_a_limit_under_1_is_rejected_with_its_field_path() -> None:
    with pytest.raises(ValidationError) as error:
        deployment({"type": "Canary", "canary": {"analysisRunHistoryLimit": 0}})
    fields = [c.field for c in causes_from_validation(error.value)]
    assert fields == ["spec.strategy.canary.analysisRunHistoryLimit"]
