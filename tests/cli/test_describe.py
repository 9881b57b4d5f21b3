"""`describe` text: metadata, spec summary, conditions and the object's events."""

from __future__ import annotations

from datetime import timedelta

from cli_samples import NOW, deployment, event, pod

from shoal.api.analysis import AnalysisRun
from shoal.api.pod import Probe
from shoal.cli.describe import events_about, probe_summary, render_description


def test_deployment_description() -> None:
    obj = deployment(
        status={
            "replicas": 3,
            "updatedReplicas": 3,
            "availableReplicas": 2,
            "unavailableReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
            ],
        }
    )
    text = render_description(
        obj, [event("ScalingReplicaSet", 30), event("Other", 5, name="x")], NOW
    )
    assert "Name:" in text and "web" in text
    assert "3 desired | 3 updated | 3 total | 2 available | 1 unavailable" in text
    assert "StrategyType:" in text and "RollingUpdate" in text
    assert "python3 -m http.server" in text
    assert "MinimumReplicasAvailable" in text
    assert "ScalingReplicaSet" in text
    assert "Other happened" not in text  # an event about another object


def test_pod_description_and_no_events() -> None:
    obj = pod(
        phase="Running",
        ready=True,
        pid=77,
        restartCount=1,
        lastState={"exitCode": 1, "reason": "Error"},
    )
    text = render_description(obj, [], NOW)
    assert "node-1" in text and "77" in text
    assert "Exit Code:" in text
    assert text.splitlines()[-1].startswith("Events:")
    assert text.splitlines()[-1].endswith("<none>")


def test_events_about_matches_kind_name_and_uid() -> None:
    obj = deployment()
    same = event("A", 10)
    other_kind = event("B", 10, kind="ReplicaSet")
    other_uid = event("C", 10)
    other_uid.involved_object.uid = "someone-else"
    assert events_about(obj, [same, other_kind, other_uid]) == [same]


def test_probe_summary() -> None:
    probe = Probe.from_json({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2})
    assert probe_summary(probe) == (
        "http-get http://127.0.0.1:http/healthz delay=0s timeout=1s period=2s #success=1 #failure=3"
    )


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
