"""Sample wire-form objects for the store tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoal.store.base import Store

StoreFactory = Callable[..., Store]
"""The `make_store` fixture (conftest.py): builds a store of the implementation under test."""


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
