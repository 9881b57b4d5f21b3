"""`describe` of an AnalysisRun: the verdict, what it judges and every measurement kept."""

from __future__ import annotations

from datetime import timedelta

from cli_samples import NOW

from shoal.api.analysis import AnalysisRun
from shoal.cli.describe import render_description


def test_analysis_run_description_shows_the_verdict_and_every_measurement() -> None:
    taken = (NOW - timedelta(seconds=20)).isoformat()
    run = AnalysisRun.from_json(
        {
            "kind": "AnalysisRun",
            "metadata": {"name": "web-7dzq2-3", "namespace": "default"},
            "spec": {
                "metrics": [{"name": "success-rate", "count": 2, "interval": "5s",
                             "successCondition": "result >= 0.95",
                             "provider": {"envoy": {"metric": "successRate"}}}],
                "args": [{"name": "deployment", "value": "web"},
                         {"name": "canary-hash", "value": "7dzq2"},
                         {"name": "stable-hash", "value": "k5s9x"}],
            },
            "status": {"phase": "Failed", "message": "success-rate failed", "metricResults": [
                {"name": "success-rate", "phase": "Failed", "count": 2, "failed": 2,
                 "snapshot": {"n|c": {"2xx": 12345}},
                 "measurements": [
                     {"phase": "Failed", "startedAt": taken, "finishedAt": taken, "value": v}
                     for v in ("0.7", "0.66")]}]},
        }
    )  # fmt: skip
    text = render_description(run, [], NOW)
    assert "Phase:                  Failed" in text
    assert "Revision:               7dzq2 (stable k5s9x)" in text and "Step:" in text
    assert "success-rate:         2/2 failed" in text
    assert "envoy successRate of the canary version" in text
    assert "success: result >= 0.95" in text
    assert "20s     Failed   0.7\n" in text and "20s     Failed   0.66\n" in text
    assert "12345" not in text  # the provider's window snapshot is no reading for people
