"""ReplicaSet: N identical pods of one revision of a template.

Usually owned by a Deployment, which names it `<deployment>-<pod-template-hash>`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from shoal.api.base import ApiModel
from shoal.api.meta import Condition, Resource
from shoal.api.pod import PodTemplateSpec
from shoal.api.selectors import LabelSelector


class ReplicaSetSpec(ApiModel):
    replicas: int = Field(default=1, ge=0, le=10_000)
    # template before selector: the selector's validator checks it against the template.
    template: PodTemplateSpec
    selector: LabelSelector
    min_ready_seconds: float = Field(default=0, ge=0)

    @field_validator("selector")
    @classmethod
    def _selector_matches_template(
        cls, selector: LabelSelector, info: ValidationInfo
    ) -> LabelSelector:
        template = info.data.get("template")
        if template is not None:
            check_selector_matches_template(selector, template)
        return selector


class ReplicaSetStatus(ApiModel):
    observed_generation: int = 0
    replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    conditions: list[Condition] = Field(default_factory=list)


class ReplicaSet(Resource):
    KIND: ClassVar[str] = "ReplicaSet"
    PLURAL: ClassVar[str] = "replicasets"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("rs",)

    kind: str = "ReplicaSet"
    spec: ReplicaSetSpec
    status: ReplicaSetStatus = Field(default_factory=ReplicaSetStatus)


def check_selector_matches_template(selector: LabelSelector, template: PodTemplateSpec) -> None:
    """A selector that does not select its own template's pods would create pods forever."""
    if selector.is_empty():
        raise ValueError("must not be empty (it would select every pod)")
    if not selector.matches(template.metadata.labels):
        raise ValueError(
            "does not match template.metadata.labels "
            f"({selector.to_query()} vs {template.metadata.labels})"
        )
