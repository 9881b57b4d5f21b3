"""The ReplicaSet reconciler: `reconcile_replicaset(rs, pods, now) -> ReplicaSetPlan`. Pure.

- Pods being deleted (deletionTimestamp set) or finished (Succeeded/Failed) do not count.
- Too few: create the difference. Too many: delete in Kubernetes' order, cheapest loss first:
  unscheduled < scheduled, Pending < Unknown < Running, not ready < ready, ready for less time
  < more, more restarts < fewer, newer < older.
- Status: replicas, readyReplicas, availableReplicas (ready for at least minReadySeconds,
  measured from the Ready condition's lastTransitionTime), observedGeneration; when a pod will
  become available later, the plan asks to be requeued then.

The executor is `shoal.controllers.replicaset.ReplicaSetController`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shoal.api.deployment import POD_TEMPLATE_HASH_LABEL
from shoal.api.meta import ObjectMeta, OwnerReference, find_condition
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet, ReplicaSetStatus

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


@dataclass
class ReplicaSetPlan:
    create: int = 0
    delete: list[Pod] = field(default_factory=list)
    status: ReplicaSetStatus | None = None
    requeue_after: float | None = None


def is_active(pod: Pod) -> bool:
    return pod.metadata.deletion_timestamp is None and pod.status.phase not in (
        "Succeeded",
        "Failed",
    )


def is_ready(pod: Pod) -> bool:
    condition = find_condition(pod.status.conditions, "Ready")
    if condition is not None:
        return condition.status == "True"
    return pod.status.ready


def ready_since(pod: Pod) -> datetime | None:
    condition = find_condition(pod.status.conditions, "Ready")
    return condition.last_transition_time if condition is not None else None


def available_in(pod: Pod, min_ready_seconds: float, now: datetime) -> float | None:
    """0 if available now, seconds until it will be, None if not ready."""
    if not is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = ready_since(pod)
    if since is None:
        return None
    return max(0.0, min_ready_seconds - (now - since).total_seconds())


def plan_inputs(pod: Pod) -> tuple[object, ...]:
    """What of a pod the ReplicaSet's plan reads, but its restart count.

    A pod status change that leaves this unchanged (a crash-looping pod's restart count, its
    pid, its last exit) cannot change the plan, so the manager does not wake the ReplicaSet
    for it: 500 crash-looping pods re-planned their ReplicaSet on every restart. The restart
    count only breaks ties when pods are deleted, and a scale-down wakes the ReplicaSet anyway.
    """
    return (
        pod.spec.node_name,
        pod.status.phase,
        pod.metadata.deletion_timestamp,
        is_ready(pod),
        ready_since(pod),
        tuple((ref.kind, ref.uid, ref.controller) for ref in pod.metadata.owner_references),
    )


def deletion_rank(pod: Pod) -> tuple[int, int, int, float, int, float]:
    """Sort key: pods to delete first sort first."""
    since = ready_since(pod)
    ready = is_ready(pod)
    created = pod.metadata.creation_timestamp
    return (
        1 if pod.spec.node_name else 0,
        _PHASE_RANK.get(pod.status.phase, 0),
        1 if ready else 0,
        -(since.timestamp() if ready and since else float("inf")),
        -pod.status.restart_count,
        -(created.timestamp() if created else float("inf")),
    )


def reconcile_replicaset(rs: ReplicaSet, pods: list[Pod], now: datetime) -> ReplicaSetPlan:
    """`pods` are the pods this ReplicaSet controls (owner reference uid)."""
    plan = ReplicaSetPlan()
    live = [pod for pod in pods if is_active(pod)]
    wanted = rs.spec.replicas if rs.metadata.deletion_timestamp is None else 0
    if len(live) < wanted:
        plan.create = wanted - len(live)
    elif len(live) > wanted:
        plan.delete = sorted(live, key=deletion_rank)[: len(live) - wanted]
    ready = available = 0
    waits: list[float] = []
    for pod in live:
        if is_ready(pod):
            ready += 1
        wait = available_in(pod, rs.spec.min_ready_seconds, now)
        if wait == 0:
            available += 1
        elif wait is not None:
            waits.append(wait)
    status = ReplicaSetStatus(
        observed_generation=rs.metadata.generation or 0,
        replicas=len(live),
        ready_replicas=ready,
        available_replicas=available,
        conditions=list(rs.status.conditions),
    )
    if status != rs.status:
        plan.status = status
    if waits:
        plan.requeue_after = min(waits) + 0.01
    return plan


def build_pod(rs: ReplicaSet, name: str) -> Pod:
    """A pod of `rs`: its template, labels, and a controller owner reference."""
    template = rs.spec.template
    labels = dict(template.metadata.labels)
    hash_value = rs.metadata.labels.get(POD_TEMPLATE_HASH_LABEL)
    if hash_value and POD_TEMPLATE_HASH_LABEL not in labels:
        labels[POD_TEMPLATE_HASH_LABEL] = hash_value
    owner = OwnerReference.controller_of("ReplicaSet", rs.metadata)
    return Pod(
        kind="Pod",
        metadata=ObjectMeta(
            name=name,
            namespace=rs.metadata.namespace,
            labels=labels,
            annotations=dict(template.metadata.annotations),
            owner_references=[owner],
        ),
        spec=template.spec.model_copy(deep=True),
    )
