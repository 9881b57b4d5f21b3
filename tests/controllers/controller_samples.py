"""Builders of Deployments, ReplicaSets and Pods for the pure reconciler tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.api.deployment import REVISION_ANNOTATION, Deployment
from shoal.api.meta import Condition, OwnerReference
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet
from shoal.controllers.revisions import build_replica_set

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def deployment(
    replicas: int = 3,
    *,
    version: str = "v1",
    surge: int | str = "25%",
    unavailable: int | str = "25%",
    strategy: str = "RollingUpdate",
    **spec: Any,
) -> Deployment:
    doc: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "uid": "deploy-uid",
            "generation": 1,
            "creationTimestamp": T0.isoformat(),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"command": ["serve", version]},
            },
            "strategy": (
                {"type": "Recreate"}
                if strategy == "Recreate"
                else {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
                }
            ),
            **spec,
        },
    }
    return Deployment.from_json(doc)


def replica_set(
    owner: Deployment,
    *,
    replicas: int,
    available: int | None = None,
    revision: int = 1,
    age: int = 0,
    version: str | None = None,
    desired: int | None = None,
    max_replicas: int | None = None,
) -> ReplicaSet:
    """A ReplicaSet of `owner`'s template (or of `version`), created `age` seconds after T0."""
    source = owner
    if version is not None:
        source = owner.model_copy(deep=True)
        source.spec.template.spec.command = ["serve", version]
    rs = build_replica_set(source, revision, replicas, surge=0)
    rs.metadata.uid = f"{rs.metadata.name}-uid"
    rs.metadata.creation_timestamp = T0 + timedelta(seconds=age)
    rs.metadata.generation = 1
    rs.metadata.annotations[REVISION_ANNOTATION] = str(revision)
    wanted = owner.spec.replicas if desired is None else desired
    rs.metadata.annotations["deployment.shoal.dev/desired-replicas"] = str(wanted)
    if max_replicas is not None:
        rs.metadata.annotations["deployment.shoal.dev/max-replicas"] = str(max_replicas)
    avail = replicas if available is None else available
    rs.status.replicas = replicas
    rs.status.ready_replicas = avail
    rs.status.available_replicas = avail
    return rs


def pod(
    name: str,
    *,
    node: str | None = "n1",
    phase: str = "Running",
    ready: bool = True,
    ready_at: datetime | None = None,
    created: datetime | None = None,
    restarts: int = 0,
    deleting: bool = False,
    owner: ReplicaSet | None = None,
) -> Pod:
    p: Pod = Pod.new(name, spec={"command": ["serve"], "nodeName": node})
    p.metadata.creation_timestamp = created or T0
    p.status.phase = phase  # type: ignore[assignment]
    p.status.ready = ready
    p.status.restart_count = restarts
    if ready or ready_at is not None:
        p.status.conditions = [
            Condition(
                type="Ready",
                status="True" if ready else "False",
                last_transition_time=ready_at or T0,
            )
        ]
    if deleting:
        p.metadata.deletion_timestamp = T0
    if owner is not None:
        p.metadata.owner_references = [
            OwnerReference(
                kind="ReplicaSet",
                name=owner.metadata.name,
                uid=owner.metadata.uid or "",
                controller=True,
            )
        ]
    return p
