"""FeatureToggle: a release switch evaluated inside the services from a watched snapshot.

Deploying a version installs code; a toggle releases a feature to users. A toggle has:

- `enabled`: the kill switch. Off means off for everybody, whatever else the spec says.
- `constraints`: every one must match the evaluation context (AND). Each names a context
  attribute (`contextName`), an `operator` and `values`; `caseInsensitive` applies to the string
  operators, `inverted` negates the result.
- `rollout`: `{percentage: 0..100, stickiness: <context attribute>, seed: ""}`: the share of
  users (hashed by `shoal.toggles.hashing.bucket`) who get the feature. Absent means 100 %.
- `variants`: `{name, weight, payload, stickiness}`; weights are integers that sum to exactly
  100 (percent). An enabled user gets one variant, assigned stickily.
- `description`, `owner`: for humans.

Evaluation rules live in `shoal.toggles.engine`; this module only validates, so that a bad
manifest is rejected with field paths (`spec.constraints[0].values[0]`) before it is stored.
Registered with `shoal.api.registry` so the generic API serves CRUD and watch
(`/api/v1/namespaces/{ns}/featuretoggles`, short name `ft`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from shoal.api.base import ApiModel
from shoal.api.meta import Resource
from shoal.api.registry import register
from shoal.toggles.semver import parse_semver

StringOperator = Literal["in", "not_in", "equals", "starts_with", "ends_with", "contains"]
SemverOperator = Literal["semver_gt", "semver_gte", "semver_lt", "semver_lte", "semver_eq"]
NumberOperator = Literal["num_eq", "num_gt", "num_gte", "num_lt", "num_lte"]
DateOperator = Literal["date_before", "date_after"]
Operator = Literal[StringOperator, SemverOperator, NumberOperator, DateOperator]

SEMVER_OPERATORS: frozenset[str] = frozenset(get_args(SemverOperator))
NUMBER_OPERATORS: frozenset[str] = frozenset(get_args(NumberOperator))
DATE_OPERATORS: frozenset[str] = frozenset(get_args(DateOperator))
# Operators comparing against one reference value; the others accept a list (any may match).
SINGLE_VALUE_OPERATORS = SEMVER_OPERATORS | NUMBER_OPERATORS | DATE_OPERATORS | {"equals"}

#: Variant weights must sum to exactly this (they are percentages).
VARIANT_WEIGHT_TOTAL = 100


def _values_as_text(value: Any) -> Any:
    """Accept `values: [1.5, 2]` in YAML: numbers become their text, the engine parses them."""
    if isinstance(value, list):
        return [
            str(item) if isinstance(item, int | float) and not isinstance(item, bool) else item
            for item in value
        ]
    return value


def parse_date(text: str) -> datetime | None:
    """An ISO 8601 date or date-time; naive values are taken as UTC. None if unparseable."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_number(text: str) -> float | None:
    """A finite decimal number, or None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class Constraint(ApiModel):
    context_name: str = Field(min_length=1)
    operator: Operator
    values: Annotated[list[str], BeforeValidator(_values_as_text)] = Field(min_length=1)
    case_insensitive: bool = False
    inverted: bool = False

    @field_validator("values")
    @classmethod
    def _values_fit_operator(cls, values: list[str], info: ValidationInfo) -> list[str]:
        op = info.data.get("operator")  # absent when the operator itself was invalid
        if op is None:
            return values
        if op in SINGLE_VALUE_OPERATORS and len(values) != 1:
            raise ValueError(f"operator {op} takes exactly one value, got {len(values)}")
        value = values[0]
        if op in SEMVER_OPERATORS and parse_semver(value) is None:
            raise ValueError(f"{value!r} is not a semantic version (like 1.2.3)")
        if op in NUMBER_OPERATORS and parse_number(value) is None:
            raise ValueError(f"{value!r} is not a number")
        if op in DATE_OPERATORS and parse_date(value) is None:
            raise ValueError(f"{value!r} is not an ISO 8601 date (like 2026-01-31T12:00:00Z)")
        return values


class Rollout(ApiModel):
    """Gradual rollout: users with `bucket(context[stickiness], seed) <= percentage` get it.

    The default (empty) seed is shared with canary cohorts; set a seed to give this toggle its
    own, independent cohort instead.
    """

    percentage: int = Field(ge=0, le=100)
    stickiness: str = Field(default="userId", min_length=1)
    seed: str = ""


class Variant(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    weight: int = Field(ge=0, le=VARIANT_WEIGHT_TOTAL)
    payload: Any = None
    stickiness: str | None = None


class FeatureToggleSpec(ApiModel):
    enabled: bool = False
    description: str = ""
    owner: str | None = None
    rollout: Rollout | None = None
    constraints: list[Constraint] = Field(default_factory=list)
    variants: list[Variant] = Field(default_factory=list)

    @field_validator("variants")
    @classmethod
    def _variants_consistent(cls, variants: list[Variant]) -> list[Variant]:
        if not variants:
            return variants
        names = [variant.name for variant in variants]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"variant names must be unique (repeated: {', '.join(duplicates)})")
        total = sum(variant.weight for variant in variants)
        if total != VARIANT_WEIGHT_TOTAL:
            raise ValueError(
                f"variant weights must sum to {VARIANT_WEIGHT_TOTAL} (they sum to {total})"
            )
        stickiness = {variant.stickiness for variant in variants if variant.stickiness}
        if len(stickiness) > 1:
            raise ValueError("all variants must use the same stickiness")
        return variants

    def variant_stickiness(self) -> str:
        """The attribute variants hash: theirs, else the rollout's, else `userId`."""
        for variant in self.variants:
            if variant.stickiness:
                return variant.stickiness
        return self.rollout.stickiness if self.rollout else "userId"


class FeatureToggle(Resource):
    KIND: ClassVar[str] = "FeatureToggle"
    PLURAL: ClassVar[str] = "featuretoggles"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ft", "toggle", "toggles")
    HAS_STATUS: ClassVar[bool] = False

    kind: str = "FeatureToggle"
    spec: FeatureToggleSpec = Field(default_factory=FeatureToggleSpec)


register(FeatureToggle)
