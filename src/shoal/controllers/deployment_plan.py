"""The Deployment reconciler: `reconcile_deployment(...) -> DeploymentPlan`. Pure.

Kubernetes' syncDeployment, one step per call:
1. find the new ReplicaSet (same template) and bump its revision above the old ones;
2. paused, or spec.replicas changed (`desired-replicas` annotation differs): only scale, the
   strategy deciding how (rolling scales in proportion); paused also trims history;
3. otherwise ask the strategy for its next rollout step (create the new ReplicaSet, scale
   one side); when nothing is left to do and the rollout is complete, trim history
   (old ReplicaSets at zero beyond revisionHistoryLimit);
4. recompute status and conditions; requeue for the progress deadline.

The executor is `shoal.controllers.deployment.DeploymentController`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shoal.api.analysis import AnalysisRun
from shoal.api.deployment import (
    PROGRESSIVE_TYPES,
    REVISION_ANNOTATION,
    Deployment,
    DeploymentStatus,
)
from shoal.api.meta import Condition, find_condition, set_condition
from shoal.api.pod import PodTemplateSpec
from shoal.api.replicaset import ReplicaSet
from shoal.controllers import deployment_status
from shoal.controllers.revisions import (
    build_replica_set,
    find_new,
    max_revision,
    replica_annotations,
)
from shoal.controllers.strategies import strategy_for
from shoal.controllers.strategies.base import (
    DESIRED_REPLICAS_ANNOTATION,
    RolloutContext,
    RolloutObservations,
    RolloutStep,
    active,
    annotation_int,
    revision_of,
)


@dataclass
class DeploymentPlan:
    create: ReplicaSet | None = None
    updates: list[ReplicaSet] = field(default_factory=list)
    deletes: list[ReplicaSet] = field(default_factory=list)
    status: DeploymentStatus | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after: float | None = None
    # Progressive strategies (BlueGreen, Canary): analysis runs to create / terminate by name,
    # and a template to put back into the spec (autoRollback).
    create_runs: list[AnalysisRun] = field(default_factory=list)
    terminate_runs: list[str] = field(default_factory=list)
    revert_to: PodTemplateSpec | None = None


def is_scaling_event(deployment: Deployment, sets: list[ReplicaSet]) -> bool:
    """Some active ReplicaSet was sized for a different spec.replicas."""
    for rs in active(sets):
        desired = annotation_int(rs, DESIRED_REPLICAS_ANNOTATION)
        if desired is not None and desired != deployment.spec.replicas:
            return True
    return False


def history_to_delete(deployment: Deployment, old: list[ReplicaSet]) -> list[ReplicaSet]:
    """Old ReplicaSets at zero replicas beyond revisionHistoryLimit, oldest revisions first."""
    idle = [
        rs
        for rs in old
        if rs.spec.replicas == 0
        and rs.status.replicas == 0
        and rs.metadata.deletion_timestamp is None
    ]
    excess = len(idle) - deployment.spec.revision_history_limit
    if excess <= 0:
        return []
    idle.sort(key=lambda rs: (revision_of(rs), rs.metadata.name))
    return idle[:excess]


def reconcile_deployment(
    deployment: Deployment,
    sets: list[ReplicaSet],
    old_pods: Mapping[str, int],
    now: datetime,
    observed: RolloutObservations | None = None,
) -> DeploymentPlan:
    """Decide the next step for `deployment`, given the ReplicaSets it controls.

    `old_pods` counts existing pods (terminating ones too) per ReplicaSet name; `observed`
    is what progressive strategies also read (analysis runs, confirmed traffic, actions).
    """
    plan = DeploymentPlan()
    strategy = strategy_for(deployment.spec.strategy.type)
    surge = strategy.max_surge(deployment)
    working = {rs.metadata.name: rs for rs in sets}
    new = find_new(deployment, sets)
    old = [rs for rs in sets if new is None or rs.metadata.name != new.metadata.name]
    top_old = max_revision(old)
    started: str | None = None

    if deployment.metadata.deletion_timestamp is not None:
        unavailable = strategy.max_unavailable(deployment)
        plan.status = _final_status(deployment, sets, new, unavailable, now)
        return plan

    if new is not None and revision_of(new) <= top_old:
        new = new.model_copy(deep=True)
        new.metadata.annotations[REVISION_ANNOTATION] = str(top_old + 1)
        working[new.metadata.name] = new
        started = "FoundNewReplicaSet"

    context = RolloutContext(
        deployment,
        new,
        old,
        sum(old_pods.get(rs.metadata.name, 0) for rs in old),
        now,
        observed or RolloutObservations(),
    )
    sizes: dict[str, int] = {}
    rollout = False
    step = RolloutStep()
    # BlueGreen and Canary hold a pause themselves (an abort must still work while paused).
    holding = deployment.spec.paused and deployment.spec.strategy.type not in PROGRESSIVE_TYPES
    if holding or is_scaling_event(deployment, context.all):
        sizes = strategy.scale(context)
        if deployment.spec.paused:
            plan.deletes = history_to_delete(deployment, old)
    else:
        rollout = True
        step = strategy.rollout(context)
        sizes = step.scales
        if step.create_new is not None:
            new = build_replica_set(deployment, top_old + 1, step.create_new, surge)
            plan.create = new
            started = "NewReplicaSetCreated"
            plan.events.append(
                (
                    "Normal",
                    "ScalingReplicaSet",
                    f"Scaled up replica set {new.metadata.name} from 0 to {step.create_new}",
                )
            )

    annotations = replica_annotations(deployment, surge)
    for name, size in sizes.items():
        rs = working.get(name)
        if rs is None:
            continue
        if rs.spec.replicas == size and all(
            rs.metadata.annotations.get(k) == v for k, v in annotations.items()
        ):
            continue
        changed = rs.model_copy(deep=True)
        changed.spec.replicas = size
        changed.metadata.annotations.update(annotations)
        working[name] = changed
        if size != rs.spec.replicas:
            direction = "up" if size > rs.spec.replicas else "down"
            plan.events.append(
                (
                    "Normal",
                    "ScalingReplicaSet",
                    f"Scaled {direction} replica set {name} from {rs.spec.replicas} to {size}",
                )
            )
    plan.updates = [rs for name, rs in working.items() if rs is not _original(sets, name)]
    if new is not None and new.metadata.name in working and plan.create is None:
        new = working[new.metadata.name]

    current = [*working.values(), *([plan.create] if plan.create else [])]
    max_unavailable = strategy.max_unavailable(deployment)
    status = deployment_status.count_status(deployment, current, new, max_unavailable, now)
    deployment_status.paused_conditions(deployment, status, now)
    status.rollout = step.rollout if step.rollout is not None else deployment.status.rollout
    if rollout:
        _leave_progressive_wait(status, step, now)
        outcome = deployment_status.rollout_conditions(
            deployment, status, new, now, started=started
        )
        plan.events.extend(outcome.events)
        plan.requeue_after = outcome.requeue_after
        if not sizes and plan.create is None and deployment_status.is_complete(deployment, status):
            plan.deletes = history_to_delete(deployment, old)
        _progressive_outcome(plan, status, step, now)
    if status != deployment.status:
        plan.status = status
    return plan


PROGRESSIVE_REASONS = ("RolloutPaused", "RolloutAnalysis", "RolloutAborted")


def _leave_progressive_wait(status: DeploymentStatus, step: RolloutStep, now: datetime) -> None:
    """A wait on time, analysis or the user ended: the progress deadline counts from now."""
    current = find_condition(status.conditions, "Progressing")
    if step.condition is None and current is not None and current.reason in PROGRESSIVE_REASONS:
        fresh = Condition(
            type="Progressing",
            status="True",
            reason="ReplicaSetUpdated",
            message="Rollout is progressing.",
        )
        status.conditions = set_condition(status.conditions, fresh, now)


def _progressive_outcome(
    plan: DeploymentPlan, status: DeploymentStatus, step: RolloutStep, now: datetime
) -> None:
    """What a BlueGreen or Canary step adds: runs, events, its own Progressing condition
    while it waits on time, analysis or the user (no progress deadline for those)."""
    plan.create_runs, plan.terminate_runs = step.create_runs, step.terminate_runs
    plan.revert_to = step.revert_to
    plan.events.extend(step.events)
    wanted, current = step.condition, find_condition(status.conditions, "Progressing")
    if wanted is not None and (
        current is None
        or (current.status, current.reason, current.message)
        != (wanted.status, wanted.reason, wanted.message)
    ):
        status.conditions = set_condition(status.conditions, wanted, now)
    if step.requeue_after is not None:
        later = plan.requeue_after
        plan.requeue_after = step.requeue_after if later is None else min(later, step.requeue_after)


def _original(sets: list[ReplicaSet], name: str) -> ReplicaSet | None:
    return next((rs for rs in sets if rs.metadata.name == name), None)


def _final_status(
    deployment: Deployment,
    sets: list[ReplicaSet],
    new: ReplicaSet | None,
    max_unavailable: int,
    now: datetime,
) -> DeploymentStatus | None:
    status = deployment_status.count_status(deployment, sets, new, max_unavailable, now)
    return status if status != deployment.status else None
