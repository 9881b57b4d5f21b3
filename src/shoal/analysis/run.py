"""The pure core of analysis: building a run from templates, judging one measurement, counting
measurements into a metric verdict and metrics into the run's verdict.

No clock, no I/O: the analysis controller (`shoal.controllers.analysis`) asks `next_due` when
to measure, calls a provider (`shoal.analysis.providers`) and hands the observation to
`record`; the rollout reads `run_verdict`'s phase.

Per metric (Argo Rollouts' semantics, restated):

    measurement k is due at startedAt + initialDelay + k * interval
    assess:  successCondition true -> Successful; failureCondition true -> Failed;
             only successCondition given and false -> Failed; only failureCondition given
             and false -> Successful; both given, neither true -> Inconclusive;
             the provider had too little data -> Inconclusive; the provider failed -> Error
    verdict: failed > failureLimit -> Failed          (checked first: fail fast)
             consecutive errors > consecutiveErrorLimit -> Error
             inconclusive > inconclusiveLimit -> Inconclusive
             successful + failed + inconclusive >= count -> Successful
             otherwise Running

The run is Failed (or Error) as soon as one metric is, Successful when all are, Inconclusive
when all are done and one is inconclusive, Terminated when the rollout no longer needs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shoal.analysis.expressions import ExpressionError, evaluate
from shoal.api.analysis import (
    MEASUREMENTS_KEPT,
    AnalysisRun,
    AnalysisRunSpec,
    AnalysisTemplate,
    Measurement,
    MeasurementPhase,
    Metric,
    MetricResult,
    RunPhase,
    substitute,
)
from shoal.api.rollout import AnalysisArg, AnalysisRef

EXEC_DEFAULT_CONDITION = "result.exitCode == 0"


class MissingArgumentsError(ValueError):
    """A template argument without a default was not given."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What a provider measured: a value, or why there is none (`inconclusive`: too little
    data, e.g. no requests in the window; `error`: the provider failed)."""

    value: Any = None
    inconclusive: str | None = None
    error: str | None = None
    snapshot: dict[str, Any] | None = None  # the provider's state for the next window
    details: dict[str, Any] = field(default_factory=dict)


def resolve_args(
    templates: Iterable[AnalysisTemplate], given: Iterable[AnalysisArg], builtin: Mapping[str, str]
) -> dict[str, str]:
    """Template defaults, overridden by the given args, then the built-in ones; raises
    MissingArgumentsError naming what is missing."""
    values: dict[str, str] = {}
    declared: list[str] = []
    for template in templates:
        for arg in template.spec.args:
            declared.append(arg.name)
            if arg.value is not None:
                values.setdefault(arg.name, arg.value)
    values.update({arg.name: arg.value for arg in given if arg.value is not None})
    values.update(builtin)
    missing = sorted({name for name in declared if name not in values})
    if missing:
        raise MissingArgumentsError(f"argument(s) without a value: {', '.join(missing)}")
    return values


def build_run_spec(
    ref: AnalysisRef, templates: Mapping[str, AnalysisTemplate], builtin: Mapping[str, str]
) -> AnalysisRunSpec:
    """The run's spec: every referenced template's metrics with arguments substituted.
    Raises KeyError for a missing template, MissingArgumentsError, ValueError for a metric
    name used by two templates."""
    chosen = [templates[t.template_name] for t in ref.templates]
    args = resolve_args(chosen, ref.args, builtin)
    metrics = []
    for template in chosen:
        for metric in template.spec.metrics:
            wire = substitute(metric.to_json(), args)
            metrics.append(Metric.from_json(wire))
    return AnalysisRunSpec.model_validate(
        {
            "metrics": [m.to_json() for m in metrics],
            "args": [{"name": k, "value": v} for k, v in sorted(args.items())],
        }
    )


def next_due(metric: Metric, result: MetricResult | None, started_at: datetime) -> datetime | None:
    """When the next measurement of `metric` is due (None: the metric is done)."""
    if result is not None and result.phase != "Running":
        return None
    taken = 0 if result is None else result.count
    seconds = metric.initial_delay_seconds + taken * metric.interval_seconds
    return started_at + timedelta(seconds=seconds)


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    try:
        return json.dumps(value, sort_keys=True, default=str)[:200]
    except (TypeError, ValueError):
        return str(value)[:200]


def assess(metric: Metric, observation: Observation) -> tuple[MeasurementPhase, str | None]:
    """The phase of one measurement and, unless Successful, why."""
    if observation.error is not None:
        return "Error", observation.error
    if observation.inconclusive is not None:
        return "Inconclusive", observation.inconclusive
    names = {"result": observation.value}
    success = metric.success_condition
    if success is None and metric.failure_condition is None and metric.provider.exec is not None:
        success = EXEC_DEFAULT_CONDITION
    try:
        if metric.failure_condition is not None and evaluate(metric.failure_condition, names):
            return "Failed", f"{metric.failure_condition} is true"
        if success is not None:
            if evaluate(success, names):
                return "Successful", None
            if metric.failure_condition is None:
                return "Failed", f"{success} is false"
            return "Inconclusive", "neither condition is true"
    except ExpressionError as error:
        return "Error", f"condition cannot be evaluated: {error}"
    return "Successful", None


def record(
    metric: Metric,
    result: MetricResult | None,
    observation: Observation,
    started_at: datetime,
    finished_at: datetime,
) -> MetricResult:
    """`result` with one more measurement counted and the metric's verdict updated."""
    result = (result or MetricResult(name=metric.name)).model_copy(deep=True)
    phase, message = assess(metric, observation)
    value = None if observation.value is None else _value_text(observation.value)
    result.measurements.append(
        Measurement(
            phase=phase,
            started_at=started_at,
            finished_at=finished_at,
            value=value,
            message=message,
        )
    )
    result.measurements = result.measurements[-MEASUREMENTS_KEPT:]
    result.count += 1
    if observation.snapshot is not None:
        result.snapshot = observation.snapshot
    if phase == "Error":
        result.error += 1
        result.consecutive_error += 1
    else:
        result.consecutive_error = 0
        if phase == "Successful":
            result.successful += 1
        elif phase == "Failed":
            result.failed += 1
        else:
            result.inconclusive += 1
    result.phase, result.message = _metric_verdict(metric, result)
    return result


VALUE_IN_MESSAGE = 60  # characters of each value a verdict quotes (it ends up in reasons)


def _recent_values(result: MetricResult, phase: str, limit: int = 5) -> str:
    values = [m.value or "null" for m in result.measurements if m.phase == phase][-limit:]
    cut = VALUE_IN_MESSAGE
    return ", ".join(v if len(v) <= cut else v[: cut - 3] + "..." for v in values)


def _metric_verdict(metric: Metric, result: MetricResult) -> tuple[Any, str | None]:
    if result.failed > metric.failure_limit:
        condition = metric.success_condition or metric.failure_condition or ""
        return "Failed", (
            f"metric {metric.name} failed: {result.failed} of {result.count} measurements "
            f"failed (failureLimit {metric.failure_limit}); "
            f"values {_recent_values(result, 'Failed')}; condition {condition}"
        )
    if result.consecutive_error > metric.consecutive_error_limit:
        last = result.measurements[-1].message if result.measurements else ""
        return "Error", (
            f"metric {metric.name}: {result.consecutive_error} errors in a row "
            f"(consecutiveErrorLimit {metric.consecutive_error_limit}); last: {last}"
        )
    if result.inconclusive > metric.inconclusive_limit:
        last = result.measurements[-1].message if result.measurements else ""
        return "Inconclusive", (
            f"metric {metric.name}: {result.inconclusive} inconclusive measurements "
            f"(inconclusiveLimit {metric.inconclusive_limit}); last: {last}"
        )
    judged = result.successful + result.failed + result.inconclusive
    if judged >= metric.count:
        return "Successful", (
            f"metric {metric.name}: {result.successful} of {judged} measurements successful; "
            f"values {_recent_values(result, 'Successful')}"
        )
    return "Running", None


def run_verdict(run: AnalysisRun) -> tuple[RunPhase, str | None]:
    """The run's phase from its metrics' (Pending until the first measurement)."""
    if run.spec.terminate:
        return "Terminated", "the rollout no longer needs this analysis"
    results = {r.name: r for r in run.status.metric_results}
    phases = [results[m.name].phase if m.name in results else "Running" for m in run.spec.metrics]
    for bad in ("Failed", "Error"):
        messages = [
            results[m.name].message or ""
            for m in run.spec.metrics
            if m.name in results and results[m.name].phase == bad
        ]
        if messages:
            return bad, "; ".join(messages)
    if "Running" in phases:
        return ("Running" if results else "Pending"), None
    if "Inconclusive" in phases:
        messages = [r.message or "" for r in results.values() if r.phase == "Inconclusive"]
        return "Inconclusive", "; ".join(messages)
    return "Successful", "; ".join(r.message or "" for r in results.values())
