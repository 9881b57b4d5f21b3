"""Recreate: stop every old pod, wait until they are gone, then start the new ones. Pure.

Kubernetes' recreate.go: scale old ReplicaSets to 0; while any old pod still exists (also
one that is stopping gracefully) do nothing; then create or scale the new ReplicaSet to
spec.replicas. There is never a moment with two versions running.
"""

from __future__ import annotations

from shoal.api.deployment import Deployment
from shoal.controllers.strategies.base import (
    RolloutContext,
    RolloutStep,
    active,
    active_or_latest,
    is_saturated,
)


class Recreate:
    """The `Strategy` object for `strategy.type: Recreate`."""

    def max_surge(self, deployment: Deployment) -> int:
        return 0

    def max_unavailable(self, deployment: Deployment) -> int:
        return 0

    def rollout(self, context: RolloutContext) -> RolloutStep:
        running_old = active(context.old)
        if running_old:
            return RolloutStep(scales={rs.metadata.name: 0 for rs in running_old})
        if context.old_pods > 0:
            return RolloutStep()
        wanted = context.deployment.spec.replicas
        if context.new is None:
            return RolloutStep(create_new=wanted)
        if context.new.spec.replicas != wanted:
            return RolloutStep(scales={context.new.metadata.name: wanted})
        return RolloutStep()

    def scale(self, context: RolloutContext) -> dict[str, int]:
        wanted = context.deployment.spec.replicas
        target = active_or_latest(context)
        if target is not None:
            return {} if target.spec.replicas == wanted else {target.metadata.name: wanted}
        if is_saturated(context.deployment, context.new):
            return {rs.metadata.name: 0 for rs in active(context.old)}
        return {}
