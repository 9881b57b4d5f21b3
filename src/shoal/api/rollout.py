"""Progressive delivery settings (`strategy.blueGreen`, `strategy.canary`) and the rollout state
the controller keeps in `Deployment.status.rollout`.

    strategy:
      type: Canary
      canary:
        steps:
        - setWeight: 20
        - pause: {duration: 30s}          # no duration: wait for `shoal rollout promote`
        - analysis: {templates: [{templateName: success-rate}], args: [{name: x, value: "1"}]}
        - setHeaderRoute: {match: [{header: x-user-group, exact: beta}]}
        - setWeight: 50
        stickiness: {header: x-user-id}   # or {cookie: session}
        autoRollback: false               # true: a failed analysis also reverts the spec
        scaleDownDelaySeconds: 30         # the old version stays warm after promotion
        analysisRunHistoryLimit: 5        # finished AnalysisRuns kept (older ones are deleted)

      type: BlueGreen
      blueGreen:
        previewPort: 9081                 # a second listener serving only the new version
        autoPromotionSeconds: 60          # absent: wait for `shoal rollout promote`
        prePromotionAnalysis: {templates: [{templateName: smoke}]}
        postPromotionAnalysis: {templates: [{templateName: success-rate}]}
        scaleDownDelaySeconds: 30         # the old version stays warm (instant undo)
        autoRollback: false
        analysisRunHistoryLimit: 5

Rejected with field paths: a weight outside 0..100, a step after `setWeight: 100`, a step with
no or several actions, stickiness with both or neither of header and cookie. That analysis
templates exist is checked by the API server at apply (`shoal.server.admission`).

`RolloutStatus.traffic` is what every node's Envoy must route (revision hashes, weight, header
routes) with a `version` the agents confirm back through `Node.status.traffic`; the state
machines are `shoal.controllers.strategies.canary` and `.bluegreen`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from shoal.api.base import ApiModel
from shoal.api.parallelrun import Duration, HeaderName, parse_duration_seconds
from shoal.api.pod import PortNumber

RolloutPhase = Literal["Progressing", "Paused", "Degraded", "Healthy"]
#: Annotation carrying a user's request to the rollout controller: "<verb> <unique stamp>",
#: verb one of promote, promote-full, abort, retry.
ACTION_ANNOTATION = "rollout.shoal.dev/action"
# Finished AnalysisRuns kept per Deployment; at least 1: the newest holds the current verdict.
ANALYSIS_RUN_HISTORY = 5
_ARG_NAME = re.compile(r"^[A-Za-z][-A-Za-z0-9_]*$")


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service's selector picks pods with these labels (how a Service finds a Deployment)."""
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def traffic_key(namespace: str | None, name: str) -> str:
    """The key of a Deployment in `Node.status.traffic`."""
    return f"{namespace or 'default'}/{name}"


class AnalysisArg(ApiModel):
    """An argument of an AnalysisTemplate (declared with an optional default) or given to one."""

    name: str
    value: str | None = None

    @field_validator("name")
    @classmethod
    def _name_syntax(cls, name: str) -> str:
        if not _ARG_NAME.match(name):
            raise ValueError("must start with a letter; letters, digits, '-' and '_' only")
        return name


class TemplateRef(ApiModel):
    template_name: str = Field(min_length=1)


class AnalysisRef(ApiModel):
    """Which AnalysisTemplates judge this step, and the arguments they get."""

    templates: list[TemplateRef] = Field(min_length=1)
    args: list[AnalysisArg] = Field(default_factory=list)


class PauseStep(ApiModel):
    duration: Duration | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.duration is None else parse_duration_seconds(self.duration)


class HeaderRouteMatch(ApiModel):
    header: HeaderName
    exact: str


class SetHeaderRoute(ApiModel):
    """Requests matching every header rule go to the canary; `match: []` removes the route."""

    match: list[HeaderRouteMatch] = Field(default_factory=list)


class CanaryStep(ApiModel):
    set_weight: int | None = Field(default=None, ge=0, le=100)
    pause: PauseStep | None = None
    analysis: AnalysisRef | None = None
    set_header_route: SetHeaderRoute | None = None

    @model_validator(mode="after")
    def _one_action(self) -> CanaryStep:
        given = [
            name
            for name, value in (
                ("setWeight", self.set_weight),
                ("pause", self.pause),
                ("analysis", self.analysis),
                ("setHeaderRoute", self.set_header_route),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a step has exactly one of setWeight, pause, analysis, setHeaderRoute"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class Stickiness(ApiModel):
    """Sticky cohorts: a user (this header's or cookie's value) stays on one version; the
    canary cohort is `shoal.toggles.hashing.bucket(value) <= weight`, as for toggles."""

    header: HeaderName | None = None
    cookie: str | None = Field(default=None, pattern=r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

    @model_validator(mode="after")
    def _one_source(self) -> Stickiness:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("give exactly one of header or cookie")
        return self


def _step_error(index: int, message: str) -> ValidationError:
    """An error located at `steps[index]` (a plain ValueError would point at `steps`)."""
    return ValidationError.from_exception_data(
        "steps",
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", message), loc=(index,), input=None
            )
        ],
    )


class CanarySettings(ApiModel):
    steps: list[CanaryStep] = Field(default_factory=list)
    stickiness: Stickiness | None = None
    auto_rollback: bool = False
    scale_down_delay_seconds: float = Field(default=30.0, ge=0, le=86_400)
    analysis_run_history_limit: int = Field(default=ANALYSIS_RUN_HISTORY, ge=1, le=1000)

    @field_validator("steps")
    @classmethod
    def _nothing_after_full_weight(cls, steps: list[CanaryStep]) -> list[CanaryStep]:
        for index, step in enumerate(steps[:-1]):
            if step.set_weight == 100:
                raise _step_error(
                    index + 1,
                    f"no step may follow setWeight: 100 (steps[{index}]), which promotes fully",
                )
        return steps

    def analysis_refs(self) -> list[tuple[str, AnalysisRef]]:
        """(field path, reference) of every analysis, for the server's template check."""
        return [
            (f"spec.strategy.canary.steps[{i}].analysis", step.analysis)
            for i, step in enumerate(self.steps)
            if step.analysis is not None
        ]


class BlueGreenSettings(ApiModel):
    preview_port: PortNumber | None = None
    auto_promotion_seconds: float | None = Field(default=None, ge=0, le=86_400)
    pre_promotion_analysis: AnalysisRef | None = None
    post_promotion_analysis: AnalysisRef | None = None
    scale_down_delay_seconds: float = Field(default=30.0, ge=0, le=86_400)
    auto_rollback: bool = False
    analysis_run_history_limit: int = Field(default=ANALYSIS_RUN_HISTORY, ge=1, le=1000)

    def analysis_refs(self) -> list[tuple[str, AnalysisRef]]:
        refs = []
        if self.pre_promotion_analysis is not None:
            refs.append(
                ("spec.strategy.blueGreen.prePromotionAnalysis", self.pre_promotion_analysis)
            )
        if self.post_promotion_analysis is not None:
            refs.append(
                ("spec.strategy.blueGreen.postPromotionAnalysis", self.post_promotion_analysis)
            )
        return refs


class TrafficRouting(ApiModel):
    """What Envoy routes for a Deployment's Services. `stable` takes the main port (blue-green:
    the active version), `canary` gets `weight` % of it plus header routes (blue-green: the
    preview version, alone on the preview port). Hashes are pod-template-hashes; Envoy's
    cluster per version is `<namespace>.<service>.<hash>`."""

    version: int = 0  # +1 on every change; agents confirm it in Node.status.traffic
    stable: str | None = None
    canary: str | None = None
    weight: int = Field(default=0, ge=0, le=100)
    header_routes: list[HeaderRouteMatch] = Field(default_factory=list)

    def same_routes(self, other: TrafficRouting) -> bool:
        return self.model_dump(exclude={"version"}) == other.model_dump(exclude={"version"})


class RolloutStatus(ApiModel):
    """The progressive rollout's state machine memory (written by the deployment controller)."""

    phase: RolloutPhase = "Progressing"
    message: str = ""
    stable_hash: str | None = None
    new_hash: str | None = None  # the revision being rolled out (None when none is)
    step_index: int | None = None  # canary: the current step (== len(steps): all done)
    step_started_at: datetime | None = None
    traffic: TrafficRouting = Field(default_factory=TrafficRouting)
    confirmed_version: int = 0  # the traffic version every Ready node has confirmed
    analysis_run: str | None = None  # the run the current step waits for
    attempt: int = 0  # +1 on retry, so analysis runs of a retried rollout get fresh names
    aborted: bool = False
    abort_reason: str | None = None
    promote_full: bool = False
    handled_action: str | None = None  # the last ACTION_ANNOTATION value acted upon
    ready_since: datetime | None = None  # blue-green: the new version became fully ready
    previous_stable_hash: str | None = None  # blue-green: the version before the last switch
    post_promotion_done: bool = False
    # Old versions kept running after a switch: hash -> when they may be scaled down.
    warm_until: dict[str, datetime] = Field(default_factory=dict)

    @property
    def traffic_confirmed(self) -> bool:
        return self.confirmed_version >= self.traffic.version
