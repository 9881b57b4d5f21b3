"""The kinds the API serves, looked up by kind name, plural or short name.

The server builds its routes from this table; the CLI resolves `shoal get po` through it.
A new kind is one model class and one line here.
"""

from __future__ import annotations

from shoal.api.deployment import Deployment
from shoal.api.event import Event
from shoal.api.meta import Resource
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet
from shoal.api.service import Service

KINDS: dict[str, type[Resource]] = {
    cls.KIND: cls for cls in (Node, Pod, ReplicaSet, Deployment, Service, Event)
}


def register(cls: type[Resource]) -> None:
    """Add a kind (used by feature modules such as toggles and analysis)."""
    KINDS[cls.KIND] = cls


def resolve_kind(name: str) -> type[Resource]:
    """`Pod`, `pod`, `pods`, `po` → Pod. Raises KeyError naming the known kinds."""
    lowered = name.lower()
    for cls in KINDS.values():
        if lowered in (cls.KIND.lower(), cls.PLURAL, *cls.SHORT_NAMES):
            return cls
    known = ", ".join(sorted(cls.PLURAL for cls in KINDS.values()))
    raise KeyError(f"unknown kind {name!r} (known: {known})")
