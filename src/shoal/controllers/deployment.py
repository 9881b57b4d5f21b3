"""The Deployment controller's executor: applies `reconcile_deployment` plans through the client.

ReplicaSet scale changes use compare-and-set (resourceVersion); a Conflict re-reads and
retries with backoff. Status is written without resourceVersion: only this controller writes
it, one worker per key.
"""

from __future__ import annotations

import contextlib

from shoal.api.deployment import Deployment
from shoal.api.errors import AlreadyExists, Invalid, NotFound
from shoal.api.replicaset import ReplicaSet
from shoal.controllers import rollouts
from shoal.controllers.context import ControllerContext
from shoal.controllers.deployment_plan import DeploymentPlan, reconcile_deployment
from shoal.controllers.queue import Key
from shoal.controllers.revisions import same_template
from shoal.controllers.rollback import rollback_deployment
from shoal.controllers.runner import Result, TerminalError


class DeploymentExecutor:
    def __init__(self, context: ControllerContext) -> None:
        self.context = context

    async def reconcile(self, key: Key) -> Result | None:
        _, namespace, name = key
        ctx = self.context
        deployment = ctx.deployments.get(namespace, name)
        if deployment is None or deployment.metadata.uid is None:
            return None
        sets = ctx.replica_sets.owned_by(deployment.metadata.uid)
        # Pods that may still run (also those stopping gracefully): Recreate waits for them.
        pods = {
            rs.metadata.name: sum(
                1
                for pod in ctx.pods.owned_by(rs.metadata.uid or "")
                if pod.status.phase not in ("Succeeded", "Failed")
            )
            for rs in sets
        }
        now = ctx.clock.now()
        plan = reconcile_deployment(
            deployment, sets, pods, now, rollouts.observe(ctx, deployment, now)
        )
        if rollouts.status_first(deployment, plan):
            # A traffic switch reaches the agents before the ReplicaSet writes of this step.
            await self._write_status(deployment, plan)
            plan.status = None
        if plan.create is not None:
            await self._create(plan.create)
        for rs in plan.updates:
            ctx.replica_sets.remember(await ctx.client.update(rs))
        for rs in plan.deletes:
            with contextlib.suppress(NotFound):
                await ctx.client.delete(
                    ReplicaSet, rs.metadata.name, rs.metadata.namespace or "default"
                )
            ctx.replica_sets.deleted(rs)
            ctx.recorder.record(
                deployment,
                "Normal",
                "DeletedOldReplicaSet",
                f"Deleted old replica set {rs.metadata.name} (beyond revisionHistoryLimit)",
            )
        await rollouts.apply(ctx, deployment, plan)
        for type_, reason, message in plan.events:
            ctx.recorder.record(deployment, type_, reason, message)
        await self._write_status(deployment, plan)
        return Result(requeue_after=plan.requeue_after)

    async def _write_status(self, deployment: Deployment, plan: DeploymentPlan) -> None:
        if plan.status is None:
            return
        meta = deployment.metadata.model_copy(update={"resource_version": None})
        changed = deployment.model_copy(update={"status": plan.status, "metadata": meta})
        with contextlib.suppress(NotFound):
            self.context.deployments.remember(await self.context.client.update_status(changed))

    async def _create(self, rs: ReplicaSet) -> None:
        ctx = self.context
        try:
            ctx.replica_sets.remember(await ctx.client.create(rs))
        except Invalid as error:
            raise TerminalError(f"replica set {rs.metadata.name} is invalid: {error}") from error
        except AlreadyExists:
            existing = await ctx.client.get(
                ReplicaSet, rs.metadata.name, rs.metadata.namespace or "default"
            )
            ours = existing.metadata.controller_ref()
            owner_uid = rs.metadata.owner_references[0].uid
            if (
                ours is None
                or ours.uid != owner_uid
                or not same_template(existing.spec.template, rs.spec.template)
            ):
                raise  # a name taken by something else: retried with backoff, visibly
            ctx.replica_sets.remember(existing)


# `shoal rollout undo` looks the rollback up here, beside the controller it drives.
__all__ = ["DeploymentExecutor", "rollback_deployment"]
