"""A tiny in-memory world for the progressive strategies: applies `reconcile_deployment` plans
the way the executor does, and lets a test decide when pods become available, when nodes
confirm the routing and how analysis runs end. No I/O, no clock: `now` moves by hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from controller_samples import T0

from shoal.api.analysis import AnalysisRun, AnalysisTemplate
from shoal.api.deployment import Deployment
from shoal.api.diffreport import DiffReport
from shoal.api.replicaset import ReplicaSet
from shoal.api.rollout import ACTION_ANNOTATION, RolloutStatus, TrafficRouting
from shoal.controllers.deployment_plan import DeploymentPlan, reconcile_deployment
from shoal.controllers.strategies.base import RolloutObservations
from shoal.controllers.strategies.progressive import hash_of


def progressive_deployment(
    strategy: dict[str, Any], *, replicas: int = 5, version: str = "v1"
) -> Deployment:
    return Deployment.from_json(
        {
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "uid": "deploy-uid",
                "generation": 1,
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"command": ["serve", version]},
                },
                "strategy": strategy,
            },
        }
    )


def template(name: str, *, args: list[dict[str, Any]] | None = None) -> AnalysisTemplate:
    return AnalysisTemplate.from_json(
        {
            "kind": "AnalysisTemplate",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "args": args or [],
                "metrics": [
                    {
                        "name": "success-rate",
                        "interval": "1s",
                        "successCondition": "result >= 0.99",
                        "provider": {"envoy": {"metric": "successRate"}},
                    }
                ],
            },
        }
    )


class World:
    def __init__(self, deployment: Deployment, templates: list[AnalysisTemplate] = ()) -> None:
        self.deployment = deployment
        self.sets: dict[str, ReplicaSet] = {}
        self.runs: dict[str, AnalysisRun] = {}
        self.templates = {t.metadata.name: t for t in templates}
        self.now = T0
        self.node_version: int | None = 0  # None: no node (nothing to confirm)
        self.plans: list[DeploymentPlan] = []
        self.events: list[tuple[str, str, str]] = []
        self.created = 0
        self._stamp = 0
        self.diff_report: DiffReport | None = None  # ParallelRun: what the differ reported

    # -- the world -------------------------------------------------------------------
    @property
    def rollout(self) -> RolloutStatus:
        assert self.deployment.status.rollout is not None
        return self.deployment.status.rollout

    @property
    def traffic(self) -> TrafficRouting:
        return self.rollout.traffic

    def by_version(self, version: str) -> ReplicaSet:
        return next(rs for rs in self.sets.values() if rs.spec.template.spec.command[1] == version)

    def hash(self, version: str) -> str:
        return hash_of(self.by_version(version))

    def sizes(self) -> dict[str, int]:
        return {rs.spec.template.spec.command[1]: rs.spec.replicas for rs in self.sets.values()}

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]

    # -- what tests do -----------------------------------------------------------------
    def reconcile(self) -> DeploymentPlan:
        observed = RolloutObservations(
            analysis_runs=tuple(self.runs.values()),
            templates=self.templates,
            confirmed_traffic=self.node_version,
            action=self.deployment.metadata.annotations.get(ACTION_ANNOTATION),
            diff_report=self.diff_report,
        )
        plan = reconcile_deployment(
            self.deployment, list(self.sets.values()), {}, self.now, observed
        )
        self.plans.append(plan)
        if plan.create is not None:
            rs = plan.create.model_copy(deep=True)
            rs.metadata.uid = f"{rs.metadata.name}-uid"
            rs.metadata.creation_timestamp = self.now
            self.sets[rs.metadata.name] = rs
            self.created += 1
        for rs in plan.updates:
            kept = self.sets[rs.metadata.name].status
            self.sets[rs.metadata.name] = rs.model_copy(update={"status": kept})
        for run in plan.create_runs:
            self.runs.setdefault(run.metadata.name, run)
        for name in plan.terminate_runs:
            self.runs[name].spec.terminate = True
        self.events += plan.events
        if plan.status is not None:
            self.deployment = self.deployment.model_copy(update={"status": plan.status})
        if plan.revert_to is not None:
            self.set_template(plan.revert_to.spec.command[1])
        return plan

    def settle(self, *, ready: bool = True, confirm: bool = True, rounds: int = 30) -> None:
        """Reconcile until nothing changes, with pods becoming available and nodes
        confirming routing as asked."""
        for _ in range(rounds):
            before = self._state()
            self.reconcile()
            if ready:
                self.make_available()
            if confirm:
                self.confirm()
            if before == self._state():
                return

    def _state(self) -> tuple[Any, ...]:
        status = self.deployment.status.model_dump_json()
        ready = [rs.status.available_replicas for rs in self.sets.values()]
        return (status, self.sizes(), ready, len(self.runs), self.node_version)

    def make_available(self, version: str | None = None) -> None:
        for rs in self.sets.values():
            if version is None or rs.spec.template.spec.command[1] == version:
                rs.status.replicas = rs.spec.replicas
                rs.status.ready_replicas = rs.spec.replicas
                rs.status.available_replicas = rs.spec.replicas

    def confirm(self) -> None:
        if self.deployment.status.rollout is not None and self.node_version is not None:
            self.node_version = self.traffic.version

    def set_template(self, version: str) -> None:
        changed = self.deployment.model_copy(deep=True)
        changed.spec.template.spec.command = ["serve", version]
        changed.metadata.generation = (changed.metadata.generation or 0) + 1
        self.deployment = changed

    def act(self, verb: str) -> None:
        self._stamp += 1
        changed = self.deployment.model_copy(deep=True)
        changed.metadata.annotations[ACTION_ANNOTATION] = f"{verb} {self._stamp}"
        self.deployment = changed

    def finish_run(self, phase: str, message: str = "") -> AnalysisRun:
        name = self.rollout.analysis_run
        assert name is not None, "no analysis run is awaited"
        run = self.runs[name]
        run.status.phase = phase  # type: ignore[assignment]
        run.status.message = message
        return run

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
