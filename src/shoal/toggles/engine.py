"""Toggle evaluation: one pure, deterministic function from (toggle, context) to an answer.

Called by the SDK (`shoal.toggles.client`, locally, from its snapshot), the evaluate endpoint
(`shoal.server.toggles_routes`) and, through it, the CLI; the same context therefore gets the
same answer everywhere (tests/toggles/vectors.json pins it).

Rules, in order (the first that decides gives the `reason`):

1. `enabled: false` -> off, reason `disabled` (the kill switch beats everything).
2. Every constraint must match, else off, reason `constraint`. A constraint reads
   `context[contextName]`; when the attribute is missing it does not match, except `not_in`,
   which does (a user with no country is not in [de, fr]). `inverted` then negates the result.
   String operators compare the canonical text (`hashing.as_text`), lower-cased on both sides
   with `caseInsensitive`; list operators match when ANY value matches. semver/num/date
   operators compare against their single value; a context value that does not parse as one
   does not match. Dates: ISO 8601, naive = UTC; `currentTime` is filled in with "now" by the
   SDK and the endpoint when the caller does not pass it (this function never reads a clock).
3. A rollout below 100 %: on only when `bucket(text(context[stickiness]), rollout.seed)
   <= percentage`, reason `rollout` either way. Missing stickiness attribute -> off (at
   100 % the rollout is skipped, so everybody is on, with or without the attribute).
4. On. With variants: the variant whose cumulative weight range holds
   `bucket(text(context[variantStickiness]), seed=<toggle name>)`, reason `variant`, with its
   payload (a missing attribute hashes the empty string: all anonymous users share one
   variant). Without variants: reason `rollout` if step 3 applied, else `constraint` if the
   toggle has constraints, else `default` (on for everybody).

Speed: `compile_toggle` turns a spec into closures once (values parsed, sets built, answers
prebuilt), so evaluating costs a few dictionary lookups and at most two murmur3 hashes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shoal.api.featuretoggle import (
    DATE_OPERATORS,
    NUMBER_OPERATORS,
    SEMVER_OPERATORS,
    Constraint,
    FeatureToggle,
    FeatureToggleSpec,
    parse_date,
    parse_number,
)
from shoal.toggles.hashing import as_text, bucket
from shoal.toggles.semver import parse_semver

Reason = Literal["disabled", "constraint", "rollout", "default", "variant"]
Context = Mapping[str, Any]
Matcher = Callable[[Context], bool]

#: The context attribute date constraints usually compare; filled with "now" when absent.
CURRENT_TIME = "currentTime"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The answer for one toggle. Treat `payload` as read-only: answers are shared."""

    value: bool
    variant: str | None
    reason: Reason
    payload: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "variant": self.variant,
            "reason": self.reason,
            "payload": self.payload,
        }


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "before": operator.lt,
    "after": operator.gt,
}


def _number(raw: Any) -> float | None:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    return parse_number(as_text(raw))


def _semver(raw: Any) -> Any:
    return parse_semver(as_text(raw))


def _date(raw: Any) -> datetime | None:
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else parse_date(raw.isoformat())
    return parse_date(as_text(raw))


def _string_test(constraint: Constraint) -> Callable[[str], bool]:
    fold = constraint.case_insensitive
    values = [v.lower() for v in constraint.values] if fold else list(constraint.values)
    op = constraint.operator
    if op in ("in", "not_in"):
        members = frozenset(values)
        test: Callable[[str], bool] = members.__contains__
    elif op == "equals":
        test = values[0].__eq__
    elif op == "starts_with":
        prefixes = tuple(values)
        test = lambda text: text.startswith(prefixes)  # noqa: E731
    elif op == "ends_with":
        suffixes = tuple(values)
        test = lambda text: text.endswith(suffixes)  # noqa: E731
    else:  # contains
        test = lambda text: any(value in text for value in values)  # noqa: E731
    if op == "not_in":
        return lambda text: not test(text.lower() if fold else text)
    if fold:
        return lambda text: test(text.lower())
    return test


def _typed_test(constraint: Constraint) -> Callable[[Any], bool]:
    op = constraint.operator
    compare = _COMPARE[op.rsplit("_", 1)[1]]
    reference: Any
    convert: Callable[[Any], Any]
    if op in SEMVER_OPERATORS:
        reference, convert = parse_semver(constraint.values[0]), _semver
    elif op in NUMBER_OPERATORS:
        reference, convert = parse_number(constraint.values[0]), _number
    else:
        reference, convert = parse_date(constraint.values[0]), _date

    def test(raw: Any) -> bool:
        value = convert(raw)
        return value is not None and compare(value, reference)

    return test


def compile_constraint(constraint: Constraint) -> Matcher:
    """A closure answering "does this context match?" with values parsed once."""
    name = constraint.context_name
    typed = constraint.operator in SEMVER_OPERATORS | NUMBER_OPERATORS | DATE_OPERATORS
    if typed:
        typed_test = _typed_test(constraint)
        test: Callable[[Any], bool] = typed_test
    else:
        string_test = _string_test(constraint)
        test = lambda raw: string_test(raw if isinstance(raw, str) else as_text(raw))  # noqa: E731
    when_missing = constraint.operator == "not_in"
    inverted = constraint.inverted

    def matches(context: Context) -> bool:
        raw = context.get(name)
        result = when_missing if raw is None else test(raw)
        return result is not inverted

    return matches


@dataclass(frozen=True, slots=True)
class CompiledToggle:
    """A toggle ready for fast evaluation; build with `compile_toggle`."""

    name: str
    spec: FeatureToggleSpec
    enabled: bool
    matchers: tuple[Matcher, ...]
    percentage: int | None  # None: no partial rollout (absent or 100 %)
    stickiness: str
    seed: str
    on: Evaluation  # the answer when on without variants
    variants: tuple[tuple[int, Evaluation], ...]  # (last bucket of the range, answer)
    variant_stickiness: str
    needs_current_time: bool


_DISABLED = Evaluation(False, None, "disabled")
_OFF_CONSTRAINT = Evaluation(False, None, "constraint")
_OFF_ROLLOUT = Evaluation(False, None, "rollout")


def compile_toggle(name: str, spec: FeatureToggleSpec) -> CompiledToggle:
    """Precompile a validated spec (values parsed, answers prebuilt) for `evaluate`."""
    rollout = spec.rollout
    percentage = rollout.percentage if rollout and rollout.percentage < 100 else None
    if percentage is not None:
        on = Evaluation(True, None, "rollout")
    else:
        on = Evaluation(True, None, "constraint" if spec.constraints else "default")
    ranges = []
    upper = 0
    for variant in spec.variants:
        upper += variant.weight
        if variant.weight:
            ranges.append((upper, Evaluation(True, variant.name, "variant", variant.payload)))
    return CompiledToggle(
        name=name,
        spec=spec,
        enabled=spec.enabled,
        matchers=tuple(compile_constraint(c) for c in spec.constraints),
        percentage=percentage,
        stickiness=rollout.stickiness if rollout else "userId",
        seed=rollout.seed if rollout else "",
        on=on,
        variants=tuple(ranges),
        variant_stickiness=spec.variant_stickiness(),
        needs_current_time=any(c.context_name == CURRENT_TIME for c in spec.constraints),
    )


def compile_resource(toggle: FeatureToggle) -> CompiledToggle:
    return compile_toggle(toggle.metadata.name, toggle.spec)


def evaluate(toggle: CompiledToggle, context: Context) -> Evaluation:
    """Evaluate one toggle for one context (rules in the module docstring). Pure."""
    if not toggle.enabled:
        return _DISABLED
    for matches in toggle.matchers:
        if not matches(context):
            return _OFF_CONSTRAINT
    if toggle.percentage is not None:
        raw = context.get(toggle.stickiness)
        if raw is None:
            return _OFF_ROLLOUT
        text = raw if isinstance(raw, str) else as_text(raw)
        if bucket(text, toggle.seed) > toggle.percentage:
            return _OFF_ROLLOUT
    if toggle.variants:
        raw = context.get(toggle.variant_stickiness)
        text = "" if raw is None else raw if isinstance(raw, str) else as_text(raw)
        position = bucket(text, toggle.name)
        for upper, answer in toggle.variants:
            if position <= upper:
                return answer
    return toggle.on


def evaluate_spec(name: str, spec: FeatureToggleSpec, context: Context) -> Evaluation:
    """`evaluate` without keeping the compiled form (tests, one-off answers)."""
    return evaluate(compile_toggle(name, spec), context)


def with_current_time(toggle: CompiledToggle, context: Context, now: datetime) -> Context:
    """The context with `currentTime` set to `now` when a constraint needs it and it is absent."""
    if toggle.needs_current_time and CURRENT_TIME not in context:
        return {**context, CURRENT_TIME: now}
    return context
