"""Sample objects for the CLI's unit tests (typed models, timestamps relative to NOW)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.api.deployment import Deployment
from shoal.api.event import Event
from shoal.api.pod import Pod

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def deployment_doc(name: str = "web", replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"command": ["python3", "-m", "http.server"], "ports": [{"name": "http"}]},
            },
            **spec,
        },
    }


def deployment(
    status: dict[str, Any] | None = None, generation: int = 1, **spec: Any
) -> Deployment:
    doc = deployment_doc(**spec)
    doc["metadata"].update(
        generation=generation,
        uid="d-uid",
        creationTimestamp=(NOW - timedelta(minutes=5)).isoformat(),
    )
    doc["status"] = status or {}
    return Deployment.from_json(doc)


def pod(name: str = "web-abc", age_seconds: int = 90, **status: Any) -> Pod:
    return Pod.from_json(
        {
            "apiVersion": "shoal/v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "creationTimestamp": (NOW - timedelta(seconds=age_seconds)).isoformat(),
            },
            "spec": {"command": ["sleep", "60"], "nodeName": "node-1"},
            "status": status,
        }
    )


def event(
    reason: str,
    seconds_ago: int,
    kind: str = "Deployment",
    name: str = "web",
    type_: str = "Normal",
) -> Event:
    return Event.from_json(
        {
            "apiVersion": "shoal/v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{reason.lower()}"},
            "involvedObject": {"kind": kind, "name": name, "namespace": "default"},
            "reason": reason,
            "message": f"{reason} happened",
            "type": type_,
            "lastTimestamp": (NOW - timedelta(seconds=seconds_ago)).isoformat(),
            "source": {"component": "deployment-controller"},
        }
    )
