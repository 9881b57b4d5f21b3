"""Deployment: the desired state of a service's instances and how to move between revisions.

`strategy.type` is a tagged choice. RollingUpdate and Recreate are the strategies of the core;
BlueGreen, Canary and ParallelRun are added as further members of the same union, each with its
own settings block (`blueGreen`, `canary`, `parallelRun`), as Argo Rollouts spells them.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from shoal.api.base import ApiModel
from shoal.api.meta import Condition, Resource
from shoal.api.parallelrun import ParallelRunSettings
from shoal.api.pod import PodTemplateSpec
from shoal.api.replicaset import check_selector_matches_template
from shoal.api.rollout import BlueGreenSettings, CanarySettings, RolloutStatus
from shoal.api.selectors import LabelSelector

_PERCENT = re.compile(r"^([0-9]{1,3})%$")


def check_int_or_percent(value: int | str) -> int | str:
    """maxSurge/maxUnavailable: a non-negative count or a percentage `0%`..`100%`."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must be >= 0")
        return value
    match = _PERCENT.match(value)
    if not match or int(match.group(1)) > 100:
        raise ValueError("must be a non-negative integer or a percentage like '25%'")
    return value


IntOrPercent = Annotated[int | str, AfterValidator(check_int_or_percent)]


class RollingUpdateSettings(ApiModel):
    max_surge: IntOrPercent = "25%"
    max_unavailable: IntOrPercent = "25%"

    @model_validator(mode="after")
    def _not_both_zero(self) -> RollingUpdateSettings:
        if self.max_surge in (0, "0%") and self.max_unavailable in (0, "0%"):
            raise ValueError("maxSurge and maxUnavailable may not both be 0")
        return self


StrategyType = Literal["RollingUpdate", "Recreate", "BlueGreen", "Canary", "ParallelRun"]
# The settings block of each type, by wire name; a block for another type is an error.
_SETTINGS_FIELD = {
    "RollingUpdate": ("rolling_update", "rollingUpdate"),
    "BlueGreen": ("blue_green", "blueGreen"),
    "Canary": ("canary", "canary"),
    "ParallelRun": ("parallel_run", "parallelRun"),
}
# Strategies driven by a rollout step machine with confirmed traffic (status.rollout).
PROGRESSIVE_TYPES = frozenset({"BlueGreen", "Canary", "ParallelRun"})


class DeploymentStrategy(ApiModel):
    type: StrategyType = "RollingUpdate"
    rolling_update: RollingUpdateSettings | None = None
    blue_green: BlueGreenSettings | None = None
    canary: CanarySettings | None = None
    parallel_run: ParallelRunSettings | None = None

    @model_validator(mode="after")
    def _settings_fit_type(self) -> DeploymentStrategy:
        for type_name, (attribute, wire) in _SETTINGS_FIELD.items():
            if type_name != self.type and getattr(self, attribute) is not None:
                raise ValueError(f"{wire} may only be set when type is {type_name}")
        own = _SETTINGS_FIELD.get(self.type)
        if own is not None and getattr(self, own[0]) is None:
            defaults = {
                "rolling_update": RollingUpdateSettings,
                "blue_green": BlueGreenSettings,
                "canary": CanarySettings,
                "parallel_run": ParallelRunSettings,
            }
            setattr(self, own[0], defaults[own[0]]())
        return self


class DeploymentSpec(ApiModel):
    replicas: int = Field(default=1, ge=0, le=10_000)
    # template before selector: the selector's validator checks it against the template.
    template: PodTemplateSpec
    selector: LabelSelector
    strategy: DeploymentStrategy = Field(default_factory=DeploymentStrategy)
    min_ready_seconds: float = Field(default=0, ge=0)
    progress_deadline_seconds: float = Field(default=600, gt=0)
    revision_history_limit: int = Field(default=10, ge=0)
    paused: bool = False

    @field_validator("selector")
    @classmethod
    def _selector_matches_template(
        cls, selector: LabelSelector, info: ValidationInfo
    ) -> LabelSelector:
        template = info.data.get("template")
        if template is not None:
            check_selector_matches_template(selector, template)
        return selector


class DeploymentStatus(ApiModel):
    observed_generation: int = 0
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    unavailable_replicas: int = 0
    conditions: list[Condition] = Field(default_factory=list)
    current_revision: int | None = None
    rollout: RolloutStatus | None = None  # BlueGreen and Canary: the step machine's state


class Deployment(Resource):
    KIND: ClassVar[str] = "Deployment"
    PLURAL: ClassVar[str] = "deployments"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("deploy",)

    kind: str = "Deployment"
    spec: DeploymentSpec
    status: DeploymentStatus = Field(default_factory=DeploymentStatus)


# Annotations and labels the controllers use, spelled once.
REVISION_ANNOTATION = "deployment.shoal.dev/revision"
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
