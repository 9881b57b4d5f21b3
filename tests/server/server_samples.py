"""Sample documents for the API server and client tests."""

from __future__ import annotations

import copy
from typing import Any

POD: dict[str, Any] = {
    "apiVersion": "shoal/v1",
    "kind": "Pod",
    "metadata": {"name": "web-1", "labels": {"app": "web"}},
    "spec": {"command": ["python3", "-m", "http.server"]},
}

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "shoal/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "command": ["python3", "-m", "http.server"],
                "readinessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 5},
            },
        },
    },
}

NODE: dict[str, Any] = {"apiVersion": "shoal/v1", "kind": "Node", "metadata": {"name": "n1"}}


def pod(name: str = "web-1", **labels: str) -> dict[str, Any]:
    doc = copy.deepcopy(POD)
    doc["metadata"]["name"] = name
    if labels:
        doc["metadata"]["labels"] = labels
    return doc


def deployment(name: str = "web", **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DEPLOYMENT)
    doc["metadata"]["name"] = name
    doc["spec"].update(spec)
    return doc
