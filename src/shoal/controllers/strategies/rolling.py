"""RollingUpdate: replace old pods by new ones within maxSurge / maxUnavailable. Pure.

The arithmetic is Kubernetes' (pkg/controller/deployment/rolling.go and sync.go), restated:
- fenceposts: maxSurge rounds up, maxUnavailable rounds down; both 0 → maxUnavailable 1;
- scale up the new ReplicaSet while the total stays <= replicas + maxSurge;
- scale down old ReplicaSets, unhealthy pods first, while available pods stay >=
  replicas - maxUnavailable (counting the new ReplicaSet's unavailable pods against the budget);
- when spec.replicas changes mid-rollout, scale every active ReplicaSet in proportion to its
  share of the last `max-replicas` annotation, larger ones first, leftovers to the largest.

One call returns one step (scale up, or scale down, or nothing); the next reconcile, triggered
by the resulting ReplicaSet events, takes the next step.
"""

from __future__ import annotations

import math

from shoal.api.deployment import Deployment
from shoal.api.replicaset import ReplicaSet
from shoal.controllers.strategies.base import (
    MAX_REPLICAS_ANNOTATION,
    RolloutContext,
    RolloutStep,
    active,
    active_or_latest,
    annotation_int,
    available_of,
    created_at,
    is_saturated,
    replicas_of,
)


def scaled_value(value: int | str, total: int, *, round_up: bool) -> int:
    """An int-or-percent setting as a count of `total`."""
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def fenceposts(max_surge: int | str, max_unavailable: int | str, replicas: int) -> tuple[int, int]:
    """(surge, unavailable) as counts; never both zero, or a rollout could not move."""
    surge = scaled_value(max_surge, replicas, round_up=True)
    unavailable = scaled_value(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _settings(deployment: Deployment) -> tuple[int | str, int | str]:
    rolling = deployment.spec.strategy.rolling_update
    if rolling is None:
        return "25%", "25%"
    return rolling.max_surge, rolling.max_unavailable


def max_surge(deployment: Deployment) -> int:
    surge, unavailable = _settings(deployment)
    return fenceposts(surge, unavailable, deployment.spec.replicas)[0]


def max_unavailable(deployment: Deployment) -> int:
    replicas = deployment.spec.replicas
    if replicas == 0:
        return 0
    surge, unavailable = _settings(deployment)
    return min(fenceposts(surge, unavailable, replicas)[1], replicas)


def new_replica_count(deployment: Deployment, all_sets: list[ReplicaSet], new_replicas: int) -> int:
    """How large the new ReplicaSet may grow now without exceeding replicas + maxSurge."""
    wanted = deployment.spec.replicas
    max_total = wanted + max_surge(deployment)
    current = replicas_of(all_sets)
    if current >= max_total:
        return new_replicas
    return new_replicas + min(max_total - current, wanted - new_replicas)


def scale_down_old(
    deployment: Deployment, new: ReplicaSet, old: list[ReplicaSet]
) -> dict[str, int]:
    """New sizes of the old ReplicaSets that may shrink now (only those that change)."""
    old_count = replicas_of(old)
    if old_count == 0:
        return {}
    all_count = old_count + new.spec.replicas
    min_available = deployment.spec.replicas - max_unavailable(deployment)
    new_unavailable = new.spec.replicas - new.status.available_replicas
    budget = all_count - min_available - new_unavailable
    if budget <= 0:
        return {}
    sizes = {rs.metadata.name: rs.spec.replicas for rs in old}
    oldest_first = sorted(old, key=created_at)
    # Unhealthy replicas first: removing them costs no availability.
    cleaned = 0
    for rs in oldest_first:
        if cleaned >= budget:
            break
        unhealthy = rs.spec.replicas - rs.status.available_replicas
        if rs.spec.replicas == 0 or unhealthy <= 0:
            continue
        count = min(budget - cleaned, unhealthy)
        sizes[rs.metadata.name] -= count
        cleaned += count
    # Then healthy ones, as long as enough stay available.
    available = available_of(old) + new.status.available_replicas
    if available > min_available:
        allowed = available - min_available
        removed = 0
        for rs in oldest_first:
            if removed >= allowed:
                break
            size = sizes[rs.metadata.name]
            if size == 0:
                continue
            count = min(size, allowed - removed)
            sizes[rs.metadata.name] = size - count
            removed += count
    return {
        rs.metadata.name: sizes[rs.metadata.name]
        for rs in old
        if sizes[rs.metadata.name] != rs.spec.replicas
    }


def rollout(context: RolloutContext) -> RolloutStep:
    deployment, new = context.deployment, context.new
    wanted = deployment.spec.replicas
    if new is None:
        return RolloutStep(create_new=new_replica_count(deployment, context.old, 0))
    if new.spec.replicas > wanted:
        return RolloutStep(scales={new.metadata.name: wanted})
    if new.spec.replicas < wanted:
        grown = new_replica_count(deployment, context.all, new.spec.replicas)
        if grown != new.spec.replicas:
            return RolloutStep(scales={new.metadata.name: grown})
    return RolloutStep(scales=scale_down_old(deployment, new, context.old))


def _round_half_away(value: float) -> int:
    return math.floor(value + 0.5)


def _fraction(rs: ReplicaSet, deployment: Deployment, fallback_total: int) -> int:
    """How many replicas `rs` gains (or loses) to keep its share of the new maximum."""
    if deployment.spec.replicas == 0:
        return -rs.spec.replicas
    new_max = deployment.spec.replicas + max_surge(deployment)
    old_max = annotation_int(rs, MAX_REPLICAS_ANNOTATION) or fallback_total
    if old_max <= 0:
        return 0
    return _round_half_away(rs.spec.replicas * new_max / old_max) - rs.spec.replicas


def scale(context: RolloutContext) -> dict[str, int]:
    deployment = context.deployment
    wanted = deployment.spec.replicas
    target = active_or_latest(context)
    if target is not None:
        return {} if target.spec.replicas == wanted else {target.metadata.name: wanted}
    if is_saturated(deployment, context.new):
        return {rs.metadata.name: 0 for rs in active(context.old)}
    running = active(context.all)
    current = replicas_of(running)
    allowed = wanted + max_surge(deployment) if wanted > 0 else 0
    to_add = allowed - current
    if to_add > 0:  # larger first, newer first on a tie
        running.sort(key=lambda rs: (-rs.spec.replicas, -created_at(rs)[0]))
    else:  # larger first, older first on a tie
        running.sort(key=lambda rs: (-rs.spec.replicas, created_at(rs)[0]))
    sizes: dict[str, int] = {}
    added = 0
    for rs in running:
        proportion = 0
        if to_add not in (0, added) and rs.spec.replicas > 0:
            fraction = _fraction(rs, deployment, current)
            remaining = to_add - added
            proportion = min(fraction, remaining) if to_add > 0 else max(fraction, remaining)
        sizes[rs.metadata.name] = rs.spec.replicas + proportion
        added += proportion
    if running and to_add != 0:
        first = running[0].metadata.name
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


class RollingUpdate:
    """The `Strategy` object for `strategy.type: RollingUpdate`."""

    def max_surge(self, deployment: Deployment) -> int:
        return max_surge(deployment)

    def max_unavailable(self, deployment: Deployment) -> int:
        return max_unavailable(deployment)

    def rollout(self, context: RolloutContext) -> RolloutStep:
        return rollout(context)

    def scale(self, context: RolloutContext) -> dict[str, int]:
        return scale(context)
