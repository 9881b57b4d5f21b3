"""Deployment status and its Available / Progressing conditions. Pure.

Kubernetes' semantics (pkg/controller/deployment/progress.go), with its reasons:

    Progressing: NewReplicaSetCreated / FoundNewReplicaSet  (a rollout starts)
                 ReplicaSetUpdated      (updated, ready or available counts grew, old shrank)
                 NewReplicaSetAvailable (complete; not touched again until the next rollout)
                 ProgressDeadlineExceeded (status False: no progress for the deadline)
                 DeploymentPaused / DeploymentResumed (status Unknown)
    Available:   MinimumReplicasAvailable / MinimumReplicasUnavailable

`lastUpdateTime` of Progressing moves only on progress, which is what the deadline measures.
Called by `deployment_plan.reconcile_deployment`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shoal.api.deployment import Deployment, DeploymentStatus
from shoal.api.meta import Condition, find_condition, set_condition
from shoal.api.replicaset import ReplicaSet
from shoal.controllers.strategies.base import revision_of

NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"


@dataclass
class StatusOutcome:
    status: DeploymentStatus
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None


def count_status(
    deployment: Deployment,
    sets: list[ReplicaSet],
    new: ReplicaSet | None,
    max_unavailable: int,
    now: datetime,
) -> DeploymentStatus:
    """Counts and the Available condition, from the ReplicaSets' own status."""
    replicas = sum(rs.status.replicas for rs in sets)
    available = sum(rs.status.available_replicas for rs in sets)
    wanted_total = sum(rs.spec.replicas for rs in sets)
    status = DeploymentStatus(
        observed_generation=deployment.metadata.generation or 0,
        replicas=replicas,
        updated_replicas=new.status.replicas if new is not None else 0,
        ready_replicas=sum(rs.status.ready_replicas for rs in sets),
        available_replicas=available,
        unavailable_replicas=max(0, wanted_total - available),
        conditions=list(deployment.status.conditions),
        current_revision=revision_of(new) if new is not None else None,
    )
    if available >= deployment.spec.replicas - max_unavailable:
        cond = Condition(
            type="Available",
            status="True",
            reason="MinimumReplicasAvailable",
            message="Deployment has minimum availability.",
        )
    else:
        cond = Condition(
            type="Available",
            status="False",
            reason="MinimumReplicasUnavailable",
            message="Deployment does not have minimum availability.",
        )
    old = find_condition(status.conditions, "Available")
    if old is None or (old.status, old.reason) != (cond.status, cond.reason):
        status.conditions = set_condition(status.conditions, cond, now)
    return status


def is_complete(deployment: Deployment, status: DeploymentStatus) -> bool:
    wanted = deployment.spec.replicas
    return (
        status.updated_replicas == wanted
        and status.replicas == wanted
        and status.available_replicas == wanted
        and status.observed_generation >= (deployment.metadata.generation or 0)
    )


def _progressed(before: DeploymentStatus, after: DeploymentStatus) -> bool:
    old_before = before.replicas - before.updated_replicas
    old_after = after.replicas - after.updated_replicas
    return (
        after.updated_replicas > before.updated_replicas
        or old_after < old_before
        or after.ready_replicas > before.ready_replicas
        or after.available_replicas > before.available_replicas
    )


def paused_conditions(deployment: Deployment, status: DeploymentStatus, now: datetime) -> None:
    """Progressing Unknown while paused, and once more when resumed."""
    current = find_condition(status.conditions, "Progressing")
    paused_now = current is not None and current.reason == "DeploymentPaused"
    if deployment.spec.paused and not paused_now:
        status.conditions = set_condition(
            status.conditions,
            Condition(
                type="Progressing",
                status="Unknown",
                reason="DeploymentPaused",
                message="Deployment is paused",
            ),
            now,
        )
    elif not deployment.spec.paused and paused_now:
        status.conditions = set_condition(
            status.conditions,
            Condition(
                type="Progressing",
                status="Unknown",
                reason="DeploymentResumed",
                message="Deployment is resumed",
            ),
            now,
        )


def rollout_conditions(
    deployment: Deployment,
    status: DeploymentStatus,
    new: ReplicaSet | None,
    now: datetime,
    *,
    started: str | None,
) -> StatusOutcome:
    """The Progressing condition during a rollout, and when to look again for the deadline.

    `started` is "NewReplicaSetCreated" or "FoundNewReplicaSet" when this pass began a rollout.
    """
    outcome = StatusOutcome(status)
    name = new.metadata.name if new is not None else deployment.metadata.name
    deadline = deployment.spec.progress_deadline_seconds
    if started is not None and new is not None:
        verb = "Created new" if started == "NewReplicaSetCreated" else "Found new"
        status.conditions = set_condition(
            status.conditions,
            Condition(
                type="Progressing",
                status="True",
                reason=started,
                message=f'{verb} replica set "{name}"',
            ),
            now,
        )
        outcome.requeue_after = deadline
        return outcome
    current = find_condition(status.conditions, "Progressing")
    if (
        current is not None
        and current.reason == NEW_RS_AVAILABLE
        and status.replicas == status.updated_replicas
    ):
        return outcome
    if is_complete(deployment, status):
        status.conditions = set_condition(
            status.conditions,
            Condition(
                type="Progressing",
                status="True",
                reason=NEW_RS_AVAILABLE,
                message=f'ReplicaSet "{name}" has successfully progressed.',
            ),
            now,
        )
        return outcome
    if _progressed(deployment.status, status) or current is None:
        status.conditions = set_condition(
            status.conditions,
            Condition(
                type="Progressing",
                status="True",
                reason="ReplicaSetUpdated",
                message=f'ReplicaSet "{name}" is progressing.',
            ),
            now,
        )
        outcome.requeue_after = deadline
        return outcome
    if current.reason == TIMED_OUT:
        return outcome
    since = current.last_update_time or current.last_transition_time or now
    remaining = deadline - (now - since).total_seconds()
    if remaining <= 0:
        status.conditions = set_condition(
            status.conditions,
            Condition(
                type="Progressing",
                status="False",
                reason=TIMED_OUT,
                message=f'ReplicaSet "{name}" has timed out progressing.',
            ),
            now,
        )
        outcome.events.append(
            (
                "Warning",
                TIMED_OUT,
                f"Deployment {deployment.metadata.name} has timed out progressing.",
            )
        )
    else:
        outcome.requeue_after = remaining
    return outcome
