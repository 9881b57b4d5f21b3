"""`describe` text: metadata, spec summary, conditions and the object's events."""

from __future__ import annotations

from cli_samples import NOW, deployment, event, pod

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
