"""The controller manager: informers, controllers and the event wiring between them.

`run_controllers(client, stop=...)` is what the server composition calls. It starts one
informer per kind and these controllers, each a `Controller` (work queue + workers) around
an executor:

    Deployment event            → deployment controller (that deployment)
    ReplicaSet event            → replicaset controller (itself) and its owning deployment
    Pod event                   → its owning replicaset; the scheduler if unbound; the gc
                                  (not when only what no plan reads changed: restart counts)
    owner DELETED               → gc of its dependents
    Node event                  → the scheduler, for every unbound pod; progressive
                                  deployments waiting for nodes to confirm routing
    AnalysisRun event           → the analysis controller (itself) and its deployment

Mapping a dependent to its owner's key uses the controller owner reference, so a pod's
status change wakes its ReplicaSet, whose status change wakes its Deployment.
"""

from __future__ import annotations

import asyncio
import logging

from shoal.api.deployment import PROGRESSIVE_TYPES, Deployment
from shoal.api.meta import Resource
from shoal.api.pod import Pod
from shoal.client import AsyncClient
from shoal.controllers.analysis import AnalysisExecutor
from shoal.controllers.clock import Clock
from shoal.controllers.context import ControllerContext
from shoal.controllers.deployment import DeploymentExecutor
from shoal.controllers.gc import GarbageCollector
from shoal.controllers.informer import EventKind
from shoal.controllers.queue import Key
from shoal.controllers.replicaset import ReplicaSetExecutor
from shoal.controllers.replicaset_plan import plan_inputs
from shoal.controllers.runner import Controller
from shoal.scheduler.binder import Binder, needs_scheduling

log = logging.getLogger(__name__)


def key_of(obj: Resource) -> Key:
    return (obj.kind, obj.metadata.namespace or "", obj.metadata.name)


def owner_key(obj: Resource, kind: str) -> Key | None:
    """The key of `obj`'s controller owner, if that owner is of `kind`."""
    ref = obj.metadata.controller_ref()
    if ref is None or ref.kind != kind:
        return None
    return (kind, obj.metadata.namespace or "", ref.name)


class ControllerManager:
    def __init__(self, context: ControllerContext, *, workers: int = 4) -> None:
        self.context = context
        clock = context.clock
        self.deployments = Controller(
            "deployment", DeploymentExecutor(context).reconcile, clock=clock, workers=workers
        )
        self.replica_sets = Controller(
            "replicaset", ReplicaSetExecutor(context).reconcile, clock=clock, workers=workers
        )
        self.gc = Controller(
            "garbage-collector", GarbageCollector(context).reconcile, clock=clock, workers=2
        )
        self.scheduler = Controller("scheduler", Binder(context).reconcile, clock=clock, workers=1)
        self.analysis = Controller(
            "analysis",
            AnalysisExecutor(context, self._wake_owner).reconcile,
            clock=clock,
            workers=workers,
        )
        self._pod_inputs: dict[Key, tuple[object, ...]] = {}
        context.deployments.add_handler(self._on_deployment)
        context.replica_sets.add_handler(self._on_replica_set)
        context.pods.add_handler(self._on_pod)
        context.nodes.add_handler(self._on_node)
        context.analysis_runs.add_handler(self._on_analysis_run)

    @property
    def controllers(self) -> list[Controller]:
        return [self.deployments, self.replica_sets, self.gc, self.scheduler, self.analysis]

    def _on_deployment(self, kind: EventKind, obj: Resource) -> None:
        if kind == "DELETED":
            self._collect_dependents(obj)
            return
        self.deployments.enqueue(key_of(obj))

    def _on_replica_set(self, kind: EventKind, obj: Resource) -> None:
        if kind == "DELETED":
            self._collect_dependents(obj)
        else:
            self.replica_sets.enqueue(key_of(obj))
            self.gc.enqueue(key_of(obj))
        owner = owner_key(obj, "Deployment")
        if owner is not None:
            self.deployments.enqueue(owner)

    def _on_pod(self, kind: EventKind, obj: Resource) -> None:
        key = key_of(obj)
        if kind == "DELETED":
            self._pod_inputs.pop(key, None)
        elif isinstance(obj, Pod):
            inputs = plan_inputs(obj)
            if self._pod_inputs.get(key) == inputs and kind == "MODIFIED":
                # Only what no plan reads changed (a restart count, a pid): nothing to do.
                return
            self._pod_inputs[key] = inputs
        owner = owner_key(obj, "ReplicaSet")
        if owner is not None:
            self.replica_sets.enqueue(owner)
            if kind == "DELETED":
                # Recreate waits for old pods to be gone: tell the deployment too.
                rs = self.context.replica_sets.get(owner[1], owner[2])
                deployment = owner_key(rs, "Deployment") if rs is not None else None
                if deployment is not None:
                    self.deployments.enqueue(deployment)
        if kind != "DELETED":
            self.gc.enqueue(key_of(obj))
            pod = self.context.pods.get(obj.metadata.namespace, obj.metadata.name)
            if pod is not None and needs_scheduling(pod):
                self.scheduler.enqueue(key_of(pod))

    def _on_node(self, kind: EventKind, obj: Resource) -> None:
        for deployment in self.context.deployments.items():
            if _awaits_traffic(deployment):
                self.deployments.enqueue(key_of(deployment))
        if kind == "DELETED":
            return
        for pod in self.context.pods.items():
            if needs_scheduling(pod):
                self.scheduler.enqueue(key_of(pod))

    def _wake_owner(self, obj: Resource) -> None:
        owner = owner_key(obj, "Deployment")
        if owner is not None:
            self.deployments.enqueue(owner)

    def _on_analysis_run(self, kind: EventKind, obj: Resource) -> None:
        if kind != "DELETED":
            self.analysis.enqueue(key_of(obj))
        owner = owner_key(obj, "Deployment")
        if owner is not None:
            self.deployments.enqueue(owner)

    def _collect_dependents(self, owner: Resource) -> None:
        if owner.metadata.uid is None:
            return
        ctx = self.context
        for informer in (ctx.replica_sets, ctx.pods, ctx.diff_reports):
            for dependent in informer.owned_by(owner.metadata.uid):
                self.gc.enqueue(key_of(dependent))

    async def run(self, stop: asyncio.Event) -> None:
        ctx = self.context
        tasks = [asyncio.create_task(informer.run(stop)) for informer in ctx.all_informers()]
        try:
            # Like WaitForCacheSync: a ReplicaSet reconciled before the pod cache is filled
            # would see no pods and create duplicates.
            synced: asyncio.Future[object] = asyncio.ensure_future(_all_synced(ctx))
            stopped: asyncio.Future[object] = asyncio.ensure_future(stop.wait())
            await asyncio.wait([synced, stopped], return_when=asyncio.FIRST_COMPLETED)
            if not synced.done():
                synced.cancel()
            else:
                tasks += [asyncio.create_task(c.run(stop)) for c in self.controllers]
            await stopped
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)
            await ctx.recorder.close(grace_seconds=2.0)


def _awaits_traffic(deployment: Deployment) -> bool:
    """A progressive rollout whose routing is not yet confirmed by every node."""
    rollout = deployment.status.rollout
    return (
        deployment.spec.strategy.type in PROGRESSIVE_TYPES
        and rollout is not None
        and rollout.confirmed_version < rollout.traffic.version
    )


async def _all_synced(ctx: ControllerContext) -> object:
    for informer in ctx.all_informers():
        await informer.synced.wait()
    return None


async def run_controllers(
    client: AsyncClient, *, stop: asyncio.Event, clock: Clock | None = None
) -> None:
    """Run every controller and the scheduler until `stop` is set (called by the server)."""
    manager = ControllerManager(ControllerContext.create(client, clock))
    log.info("controllers started")
    await manager.run(stop)
