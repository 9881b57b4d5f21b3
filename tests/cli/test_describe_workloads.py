"""`describe` of a Deployment, and the probe summary of a pod spec."""

from __future__ import annotations

from cli_samples import NOW, deployment, event

from shoal.api.pod import Probe
from shoal.cli.describe import render_description
from shoal.cli.describe_workloads import probe_summary


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


def test_probe_summary() -> None:
    probe = Probe.from_json({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2})
    assert probe_summary(probe) == (
        "http-get http://127.0.0.1:http/healthz delay=0s timeout=1s period=2s #success=1 #failure=3"
    )
