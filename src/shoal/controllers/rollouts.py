"""Glue between the deployment executor and the progressive strategies (BlueGreen, Canary).

`observe` gathers what the pure step machines read besides ReplicaSets (their analysis runs,
the templates, the traffic version every Ready node confirmed, the user's action annotation);
`apply` carries out what they decide besides scaling (create / terminate analysis runs,
revert the spec for autoRollback). Both are called by `shoal.controllers.deployment`.

Which nodes must confirm: those whose Ready condition is True and whose heartbeat is recent,
because every node's Envoy serves every Service. A node that stopped heart-beating is not
waited for (it would block every rollout); when it comes back its agent routes the current
state anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime

from shoal.api.analysis import AnalysisRun
from shoal.api.deployment import PROGRESSIVE_TYPES, Deployment
from shoal.api.errors import AlreadyExists, Conflict, NotFound
from shoal.api.meta import find_condition
from shoal.api.node import Node
from shoal.api.rollout import ACTION_ANNOTATION, traffic_key
from shoal.controllers import parallel_run
from shoal.controllers.context import ControllerContext
from shoal.controllers.deployment_plan import DeploymentPlan
from shoal.controllers.strategies.base import RolloutObservations

NODE_FRESH_SECONDS = 30.0  # six missed heartbeats of 5 s


def is_progressive(deployment: Deployment) -> bool:
    return deployment.spec.strategy.type in PROGRESSIVE_TYPES


def routing_nodes(nodes: Iterable[Node], now: datetime) -> list[Node]:
    """Nodes whose Envoy is expected to route: Ready, heart-beating, with an Envoy."""
    out = []
    for node in nodes:
        ready = find_condition(node.status.conditions, "Ready")
        beat = node.status.last_heartbeat_time
        if ready is None or ready.status != "True" or node.status.envoy_admin_port is None:
            continue
        if beat is not None and (now - beat).total_seconds() > NODE_FRESH_SECONDS:
            continue
        out.append(node)
    return out


def confirmed_traffic(nodes: Iterable[Node], key: str, now: datetime) -> int | None:
    """The traffic version all routing nodes confirmed for `key` (None: no node routes)."""
    versions = [node.status.traffic.get(key, 0) for node in routing_nodes(nodes, now)]
    return min(versions) if versions else None


def observe(ctx: ControllerContext, deployment: Deployment, now: datetime) -> RolloutObservations:
    if not is_progressive(deployment):
        return RolloutObservations()
    meta = deployment.metadata
    namespace = meta.namespace or "default"
    return RolloutObservations(
        analysis_runs=tuple(ctx.analysis_runs.owned_by(meta.uid or "")),
        templates={t.metadata.name: t for t in ctx.analysis_templates.items(namespace)},
        confirmed_traffic=confirmed_traffic(
            ctx.nodes.items(), traffic_key(namespace, meta.name), now
        ),
        action=meta.annotations.get(ACTION_ANNOTATION),
        diff_report=parallel_run.observed_report(ctx, deployment),
    )


def status_first(deployment: Deployment, plan: DeploymentPlan) -> bool:
    """Write the status before the ReplicaSet changes: a progressive plan that changes the
    routing and needs no spec revert (the revert must land before the status records the
    abort, or a failed revert would never be retried)."""
    if not is_progressive(deployment) or plan.status is None or plan.revert_to is not None:
        return False
    before, after = deployment.status.rollout, plan.status.rollout
    return after is not None and (before is None or before.traffic.version != after.traffic.version)


async def apply(ctx: ControllerContext, deployment: Deployment, plan: DeploymentPlan) -> None:
    """Runs and spec changes of a progressive plan (before its status is written, so that a
    failure here retries the whole decision)."""
    for run in plan.create_runs:
        with contextlib.suppress(AlreadyExists):
            ctx.analysis_runs.remember(await ctx.client.create(run))
    namespace = deployment.metadata.namespace or "default"
    for name in plan.terminate_runs:
        await _terminate(ctx, namespace, name)
    if plan.revert_to is not None:
        await _revert(ctx, deployment, plan)
    await parallel_run.sync(ctx, deployment)  # ParallelRun: the differ Pod and its report


async def _terminate(ctx: ControllerContext, namespace: str, name: str) -> None:
    for _ in range(5):
        try:
            run = await ctx.client.get(AnalysisRun, name, namespace)
        except NotFound:
            return
        if run.spec.terminate or run.done:
            return
        run.spec.terminate = True
        try:
            ctx.analysis_runs.remember(await ctx.client.update(run))
            return
        except Conflict:
            continue


async def _revert(ctx: ControllerContext, deployment: Deployment, plan: DeploymentPlan) -> None:
    assert plan.revert_to is not None
    meta = deployment.metadata
    for _ in range(5):
        current = await ctx.client.get(Deployment, meta.name, meta.namespace or "default")
        if current.spec.template.to_json() == plan.revert_to.to_json():
            return
        if current.spec.template.to_json() != deployment.spec.template.to_json():
            return  # the user changed the spec meanwhile: theirs wins
        current.spec.template = plan.revert_to
        with contextlib.suppress(Conflict):
            ctx.deployments.remember(await ctx.client.update(current))
            return
    raise Conflict(f"deployment {meta.name} kept changing; autoRollback not written yet")
