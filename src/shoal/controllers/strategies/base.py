"""What a rollout strategy sees and decides: the shared vocabulary of strategy modules.

A strategy is a pure step machine over observed ReplicaSets. The deployment reconciler
(`shoal.controllers.deployment_plan`) builds a `RolloutContext`, asks the strategy named by
`spec.strategy.type` for one `RolloutStep`, and turns the step into writes. Adding BlueGreen,
Canary or ParallelRun means one more module implementing `Strategy` and one line in
`shoal.controllers.strategies.STRATEGIES`; the rolling code is not touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from shoal.api.analysis import AnalysisRun, AnalysisTemplate
from shoal.api.deployment import REVISION_ANNOTATION, Deployment
from shoal.api.diffreport import DiffReport
from shoal.api.meta import Condition
from shoal.api.pod import PodTemplateSpec
from shoal.api.replicaset import ReplicaSet
from shoal.api.rollout import RolloutStatus

DESIRED_REPLICAS_ANNOTATION = "deployment.shoal.dev/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.shoal.dev/max-replicas"


@dataclass(frozen=True)
class RolloutObservations:
    """What progressive strategies (BlueGreen, Canary) see beyond ReplicaSets: their analysis
    runs, the templates to create runs from, the traffic version every Ready node confirmed
    (None: no node routes traffic, nothing to wait for) and the user's action annotation."""

    analysis_runs: tuple[AnalysisRun, ...] = ()
    templates: Mapping[str, AnalysisTemplate] = field(default_factory=dict)
    confirmed_traffic: int | None = None
    action: str | None = None
    diff_report: DiffReport | None = None  # ParallelRun: the candidate's report, if any


@dataclass(frozen=True)
class RolloutContext:
    deployment: Deployment
    new: ReplicaSet | None
    old: list[ReplicaSet]  # every other ReplicaSet the deployment controls
    old_pods: int  # pods of old ReplicaSets that still exist (also terminating ones)
    now: datetime
    observed: RolloutObservations = field(default_factory=RolloutObservations)

    @property
    def all(self) -> list[ReplicaSet]:
        return [*self.old, self.new] if self.new is not None else list(self.old)


@dataclass
class RolloutStep:
    """One step: create the new ReplicaSet with `create_new` replicas and/or rescale some."""

    create_new: int | None = None
    scales: dict[str, int] = field(default_factory=dict)
    # Progressive strategies only: the new `status.rollout`, runs to create or stop, a
    # Progressing condition replacing the replica-based one (pauses and analyses are not
    # "stuck"), events, when to look again, and a template to revert the spec to.
    rollout: RolloutStatus | None = None
    create_runs: list[AnalysisRun] = field(default_factory=list)
    terminate_runs: list[str] = field(default_factory=list)
    condition: Condition | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None
    revert_to: PodTemplateSpec | None = None

    def is_empty(self) -> bool:
        return self.create_new is None and not self.scales


class Strategy(Protocol):
    def max_surge(self, deployment: Deployment) -> int:
        """How many pods above spec.replicas this strategy may run (annotations, scaling)."""
        ...

    def max_unavailable(self, deployment: Deployment) -> int:
        """How many of spec.replicas may be unavailable (the Available condition)."""
        ...

    def rollout(self, context: RolloutContext) -> RolloutStep:
        """The next step of moving from the old ReplicaSets to the new template."""
        ...

    def scale(self, context: RolloutContext) -> dict[str, int]:
        """Replica counts when spec.replicas changed (or while paused); no rollout progress."""
        ...


def replicas_of(sets: list[ReplicaSet]) -> int:
    return sum(rs.spec.replicas for rs in sets)


def available_of(sets: list[ReplicaSet]) -> int:
    return sum(rs.status.available_replicas for rs in sets)


def active(sets: list[ReplicaSet]) -> list[ReplicaSet]:
    return [rs for rs in sets if rs.spec.replicas > 0]


def created_at(rs: ReplicaSet) -> tuple[float, str]:
    stamp = rs.metadata.creation_timestamp
    return (stamp.timestamp() if stamp else 0.0, rs.metadata.name)


def revision_of(rs: ReplicaSet) -> int:
    try:
        return int(rs.metadata.annotations.get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def annotation_int(rs: ReplicaSet, name: str) -> int | None:
    try:
        return int(rs.metadata.annotations[name])
    except (KeyError, ValueError):
        return None


def active_or_latest(context: RolloutContext) -> ReplicaSet | None:
    """The only active ReplicaSet, or the latest when none is active; None if several are."""
    if context.new is None and not context.old:
        return None
    newest_first = sorted(context.old, key=created_at, reverse=True)
    running = active([*newest_first, *([context.new] if context.new else [])])
    if len(running) == 1:
        return running[0]
    if not running:
        return context.new if context.new is not None else newest_first[0]
    return None


def is_saturated(deployment: Deployment, rs: ReplicaSet | None) -> bool:
    """The new ReplicaSet alone runs every wanted replica, all available."""
    if rs is None:
        return False
    wanted = deployment.spec.replicas
    return (
        rs.spec.replicas == wanted
        and annotation_int(rs, DESIRED_REPLICAS_ANNOTATION) == wanted
        and rs.status.available_replicas == wanted
    )
