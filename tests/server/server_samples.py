"""Sample documents for the API server and client tests."""

from __future__ import annotations

import copy
import socket
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
