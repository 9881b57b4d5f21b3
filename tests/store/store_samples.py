"""Sample wire-form objects for the store tests."""

from __future__ import annotations

from typing import Any


def pod(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"command": ["sleep", "1"]},
        "status": {},
    }


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Node", "metadata": {"name": name}, "spec": {}}
