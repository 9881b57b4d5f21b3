"""The analysis controller's executor: takes each AnalysisRun's measurements when they are due,
records every one in the run's status and sets its verdict.

Per reconcile of a run: stop if it is done; mark it Terminated when the rollout asked
(`spec.terminate`); otherwise measure every metric that is due (`shoal.analysis.run.next_due`)
through its provider, `record` the observation, write the status, and requeue for the next
due time. The owning Deployment is woken by the manager on every run change and reads the
verdict. The pure parts are in `shoal.analysis.run`; the providers in
`shoal.analysis.providers`.

History: when a run finishes, the finished runs of its Deployment beyond the newest
`analysisRunHistoryLimit` (canary or blueGreen settings, default 5) are deleted through the
API (`runs_to_prune`, pure). A run still measuring is never deleted, nor the one the rollout
names as its current step's (`status.rollout.analysisRun`), whose verdict it reads.

What an `envoy` metric measures: the clusters `<namespace>.<service>.<hash>` of every Service
that routes to the Deployment (or the one named by the metric), with `hash` the canary's or
the stable version's pod-template-hash from the run's arguments, on every routing node's
Envoy, read through the node's agent API (`http://<node address>:<agentPort>/envoy/stats`):
Envoy's admin API listens on 127.0.0.1 only, so a node on another machine is reached through
its agent, and the embedded one the same way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from shoal.agent.envoy.config import cluster_name
from shoal.analysis.providers import Target, measure
from shoal.analysis.run import next_due, record, run_verdict
from shoal.api.analysis import (
    DONE_PHASES,
    AnalysisRun,
    AnalysisRunStatus,
    Metric,
    MetricResult,
)
from shoal.api.deployment import Deployment
from shoal.api.errors import NotFound
from shoal.api.rollout import ANALYSIS_RUN_HISTORY, selector_matches
from shoal.api.service import Service
from shoal.controllers.context import ControllerContext
from shoal.controllers.queue import Key
from shoal.controllers.rollouts import routing_nodes
from shoal.controllers.runner import Result

log = logging.getLogger(__name__)


class AnalysisExecutor:
    def __init__(
        self, context: ControllerContext, on_written: Callable[[AnalysisRun], None] | None = None
    ) -> None:
        self.context = context
        # Wakes the owning Deployment at once (it reads the run from the shared cache), one
        # watch round trip sooner than the run's MODIFIED event would.
        self.on_written = on_written

    async def reconcile(self, key: Key) -> Result | None:
        _, namespace, name = key
        ctx = self.context
        run = ctx.analysis_runs.get(namespace, name)
        if run is None or run.done:
            return None
        now = ctx.clock.now()
        status = run.status.model_copy(deep=True)
        if status.started_at is None:
            status.started_at, status.phase = now, "Running"
        started_at = status.started_at
        due_times: list[datetime] = []
        if not run.spec.terminate:
            for metric in run.spec.metrics:
                result = status.result_of(metric.name)
                due = next_due(metric, result, started_at)
                if due is None:
                    continue
                if due > now:
                    due_times.append(due)
                    continue
                result = await self._measure(run, metric, result)
                _replace(status, result)
                after = next_due(metric, result, started_at)
                if after is not None:
                    due_times.append(after)
        status.phase, status.message = run_verdict(run.model_copy(update={"status": status}))
        if status.phase in DONE_PHASES:
            status.finished_at = ctx.clock.now()
        changed = run.model_copy(update={"status": status})
        changed.metadata = changed.metadata.model_copy(update={"resource_version": None})
        try:
            written = await ctx.client.update_status(changed)
        except NotFound:
            return None
        ctx.analysis_runs.remember(written)
        if self.on_written is not None:
            self.on_written(written)
        if status.finished_at is not None:
            await self._prune(written)
            return None
        if not due_times:
            return None
        wait = (min(due_times) - ctx.clock.now()).total_seconds()
        return Result(requeue_after=max(wait, 0.0))

    async def _prune(self, finished: AnalysisRun) -> None:
        """Delete the Deployment's finished runs beyond its history limit."""
        ctx = self.context
        ref = finished.metadata.controller_ref()
        namespace = finished.metadata.namespace or "default"
        if ref is None or ref.kind != "Deployment":
            return
        deployment = ctx.deployments.get(namespace, ref.name)
        if deployment is None or deployment.metadata.uid != ref.uid:
            return
        rollout = deployment.status.rollout
        current = {rollout.analysis_run} if rollout is not None and rollout.analysis_run else set()
        runs = ctx.analysis_runs.owned_by(ref.uid)
        for run in runs_to_prune(runs, history_limit(deployment), current):
            with contextlib.suppress(NotFound):  # someone else deleted it first
                await ctx.client.delete(AnalysisRun, run.metadata.name, namespace)
            ctx.analysis_runs.deleted(run)
            log.info("deleted AnalysisRun %s/%s (history limit)", namespace, run.metadata.name)

    async def _measure(
        self, run: AnalysisRun, metric: Metric, result: MetricResult | None
    ) -> MetricResult:
        ctx = self.context
        target = Target()
        if metric.provider.envoy is not None:
            target = await self._envoy_target(run, metric, result)
        started = ctx.clock.now()
        observation = await measure(metric, target)
        return record(metric, result, observation, started, ctx.clock.now())

    async def _envoy_target(
        self, run: AnalysisRun, metric: Metric, result: MetricResult | None
    ) -> Target:
        ctx = self.context
        envoy = metric.provider.envoy
        assert envoy is not None
        args = run.spec.arg_values()
        namespace = run.metadata.namespace or "default"
        revision = args.get("canary-hash" if envoy.revision == "canary" else "stable-hash", "")
        services = [envoy.service] if envoy.service else await self._services(namespace, args)
        nodes = routing_nodes(ctx.nodes.items(), ctx.clock.now())
        agents = {
            node.metadata.name: f"http://{node.status.address}:{node.status.agent_port}"
            for node in nodes
            if node.status.agent_port is not None
        }
        clusters = tuple(cluster_name(namespace, svc, revision) for svc in services if revision)
        previous = result.snapshot if result is not None else None
        unreadable = tuple(n.metadata.name for n in nodes if n.status.agent_port is None)
        return Target(clusters=clusters, agents=agents, previous=previous, unreadable=unreadable)

    async def _services(self, namespace: str, args: dict[str, str]) -> list[str]:
        """The Services whose selector picks the Deployment's pods."""
        deployment = self.context.deployments.get(namespace, args.get("deployment", ""))
        if deployment is None:
            return []
        return services_of(deployment, (await self.context.client.list(Service, namespace)).items)


def services_of(deployment: Deployment, services: list[Service]) -> list[str]:
    labels = deployment.spec.template.metadata.labels
    return sorted(
        s.metadata.name
        for s in services
        if s.metadata.namespace == deployment.metadata.namespace
        and selector_matches(s.spec.selector, labels)
    )


def history_limit(deployment: Deployment) -> int:
    """How many finished AnalysisRuns the Deployment keeps (its strategy's setting)."""
    strategy = deployment.spec.strategy
    settings = strategy.canary or strategy.blue_green
    return settings.analysis_run_history_limit if settings is not None else ANALYSIS_RUN_HISTORY


def runs_to_prune(runs: list[AnalysisRun], limit: int, keep: set[str]) -> list[AnalysisRun]:
    """The finished runs older than the newest `limit` finished ones, never a running one nor
    one named in `keep`. Newest by creation time (name breaks ties)."""

    def created(run: AnalysisRun) -> tuple[float, str]:
        stamp = run.metadata.creation_timestamp
        return (stamp.timestamp() if stamp is not None else 0.0, run.metadata.name)

    finished = sorted((run for run in runs if run.done), key=created, reverse=True)
    return [run for run in finished[max(limit, 1) :] if run.metadata.name not in keep]


def _replace(status: AnalysisRunStatus, result: MetricResult) -> None:
    names = [r.name for r in status.metric_results]
    if result.name in names:
        status.metric_results[names.index(result.name)] = result
    else:
        status.metric_results.append(result)
