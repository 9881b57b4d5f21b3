"""AnalysisTemplate and AnalysisRun: how to judge a version from measurements, and one judging.

    apiVersion: shoal/v1
    kind: AnalysisTemplate
    metadata: {name: success-rate}
    spec:
      args: [{name: threshold, value: "0.99"}]      # no value: the Deployment must give one
      metrics:
      - name: success-rate
        interval: 5s            # time between measurements (30s, 1m, or seconds)
        count: 3                # measurements to take; the metric succeeds after the last
        initialDelay: 0s        # wait before the first one
        successCondition: result >= {{args.threshold}}
        failureCondition: result < 0.9     # optional; neither true = inconclusive
        failureLimit: 0         # failed measurements tolerated (one more fails the metric)
        inconclusiveLimit: 0    # inconclusive ones tolerated (one more: inconclusive run)
        consecutiveErrorLimit: 4   # provider errors in a row tolerated
        provider:
          envoy: {metric: successRate, revision: canary}   # or p50/p90/p99, requestCount...
          # web: {url: "http://127.0.0.1:9090/api?q=x", jsonPath: data.value}
          # exec: {command: [./check.sh, "{{args.canary-hash}}"]}

`{{args.NAME}}` is replaced in every string of a metric when the run is created; the rollout
always provides `namespace`, `deployment`, `stable-hash` and `canary-hash`. Conditions use
the language of `shoal.analysis.expressions` (`result` is the measured value).

An AnalysisRun is created by the rollout controller from one or more templates (metrics
copied, args resolved) and owned by the Deployment; the analysis controller takes the
measurements and records every one in `status.metricResults[].measurements`. Both kinds
register with `shoal.api.registry` on import (plurals `analysistemplates`/`analysisruns`,
short names `at`/`ar`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from shoal.analysis.expressions import ExpressionError, check
from shoal.api.base import ApiModel
from shoal.api.meta import Resource
from shoal.api.parallelrun import Duration, parse_duration_seconds
from shoal.api.registry import register
from shoal.api.rollout import AnalysisArg

_ARG_REFERENCE = re.compile(r"\{\{\s*args\.([A-Za-z][-A-Za-z0-9_]*)\s*\}\}")
_METRIC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
BUILTIN_ARGS = ("namespace", "deployment", "stable-hash", "canary-hash")
MEASUREMENTS_KEPT = 50  # per metric; older ones are dropped (counts stay exact)

# No request rate: a first measurement's window (all traffic so far) has no known length.
EnvoyMetricName = Literal["successRate", "errorRate", "requestCount", "p50", "p90", "p99"]
MeasurementPhase = Literal["Successful", "Failed", "Inconclusive", "Error"]
MetricPhase = Literal["Running", "Successful", "Failed", "Inconclusive", "Error"]
RunPhase = Literal[
    "Pending", "Running", "Successful", "Failed", "Inconclusive", "Error", "Terminated"
]
DONE_PHASES: frozenset[str] = frozenset(
    {"Successful", "Failed", "Inconclusive", "Error", "Terminated"}
)


def arg_references(text: str) -> list[str]:
    """The argument names `{{args.NAME}}` in `text` refers to, in order."""
    return _ARG_REFERENCE.findall(text)


def substitute(value: Any, args: dict[str, str]) -> Any:
    """`value` (str, list, dict) with every `{{args.NAME}}` replaced; unknown names stay."""
    if isinstance(value, str):
        return _ARG_REFERENCE.sub(lambda m: args.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(item, args) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, args) for key, item in value.items()}
    return value


class EnvoyMetric(ApiModel):
    """A version's request statistics from shoal's own Envoys (every node, summed), over the
    time since the previous measurement (the first: since the version got traffic)."""

    metric: EnvoyMetricName
    revision: Literal["canary", "stable"] = "canary"
    service: str | None = None  # default: every Service routing to the Deployment's pods
    min_requests: int = Field(default=1, ge=0)  # fewer in the window: inconclusive


class WebMetric(ApiModel):
    """GET a URL; the result is the JSON field at `jsonPath` (dots and [index]) or the body."""

    url: str = Field(min_length=1)
    json_path: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=5.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        if not url.startswith(("http://", "https://", "{{")):
            raise ValueError("must be an http:// or https:// URL")
        return url


class ExecMetric(ApiModel):
    """Run a command (no shell); the result is {exitCode, output, value}: `value` is the
    output parsed as a number when it is one."""

    command: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)


class MetricProvider(ApiModel):
    envoy: EnvoyMetric | None = None
    web: WebMetric | None = None
    exec: ExecMetric | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MetricProvider:
        given = [name for name in ("envoy", "web", "exec") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one provider: envoy, web or exec"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


def _check_condition(text: str | None) -> str | None:
    if text is None:
        return None
    # Arguments are substituted before evaluation; validate with placeholders in their place.
    try:
        check(_ARG_REFERENCE.sub("0", text))
    except ExpressionError as error:
        raise ValueError(str(error)) from None
    return text


class Metric(ApiModel):
    name: str
    interval: Duration = "10s"
    count: int = Field(default=1, ge=1, le=10_000)
    initial_delay: Duration = 0
    success_condition: str | None = None
    failure_condition: str | None = None
    failure_limit: int = Field(default=0, ge=0)
    inconclusive_limit: int = Field(default=0, ge=0)
    consecutive_error_limit: int = Field(default=4, ge=0)
    provider: MetricProvider

    @field_validator("success_condition", "failure_condition")
    @classmethod
    def _condition_syntax(cls, value: str | None) -> str | None:
        return _check_condition(value)

    @field_validator("name")
    @classmethod
    def _name_syntax(cls, name: str) -> str:
        if len(name) > 63 or not _METRIC_NAME.match(name):
            raise ValueError("must be lowercase letters, digits or '-' (at most 63 characters)")
        return name

    @field_validator("interval")
    @classmethod
    def _positive_interval(cls, value: str | float) -> str | float:
        if parse_duration_seconds(value) <= 0:
            raise ValueError("must be more than 0")
        return value

    @property
    def interval_seconds(self) -> float:
        return parse_duration_seconds(self.interval)

    @property
    def initial_delay_seconds(self) -> float:
        return parse_duration_seconds(self.initial_delay)


def _unique_metric_names(metrics: list[Metric]) -> list[Metric]:
    names = [metric.name for metric in metrics]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"metric names must be unique (repeated: {', '.join(repeated)})")
    return metrics


class AnalysisTemplateSpec(ApiModel):
    args: list[AnalysisArg] = Field(default_factory=list)
    metrics: list[Metric] = Field(min_length=1)

    @field_validator("metrics")
    @classmethod
    def _unique(cls, metrics: list[Metric]) -> list[Metric]:
        return _unique_metric_names(metrics)

    @model_validator(mode="after")
    def _references_declared(self) -> AnalysisTemplateSpec:
        declared = {arg.name for arg in self.args} | set(BUILTIN_ARGS)
        for metric in self.metrics:
            text = metric.model_dump_json(by_alias=True)
            missing = sorted(set(arg_references(text)) - declared)
            if missing:
                raise ValueError(
                    f"metric {metric.name!r} uses undeclared argument(s) {', '.join(missing)}; "
                    "declare them under spec.args"
                )
        return self

    def required_args(self) -> list[str]:
        """Arguments without a default: whoever uses the template must give them."""
        return [arg.name for arg in self.args if arg.value is None]


class AnalysisTemplate(Resource):
    KIND: ClassVar[str] = "AnalysisTemplate"
    PLURAL: ClassVar[str] = "analysistemplates"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("at",)
    HAS_STATUS: ClassVar[bool] = False

    kind: str = "AnalysisTemplate"
    spec: AnalysisTemplateSpec


class Measurement(ApiModel):
    phase: MeasurementPhase
    started_at: datetime
    finished_at: datetime
    value: str | None = None  # the result as JSON text, for people and `rollout status`
    message: str | None = None


class MetricResult(ApiModel):
    name: str
    phase: MetricPhase = "Running"
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    message: str | None = None
    measurements: list[Measurement] = Field(default_factory=list)
    # What the provider needs to measure the next window (Envoy: counters and latency
    # buckets at the last measurement, per node), kept here so a controller restart
    # does not lose the window.
    snapshot: dict[str, Any] | None = None


class AnalysisRunSpec(ApiModel):
    metrics: list[Metric] = Field(min_length=1)
    args: list[AnalysisArg] = Field(default_factory=list)
    terminate: bool = False  # set by the rollout when it no longer needs the verdict

    @field_validator("metrics")
    @classmethod
    def _unique(cls, metrics: list[Metric]) -> list[Metric]:
        return _unique_metric_names(metrics)

    def arg_values(self) -> dict[str, str]:
        return {arg.name: arg.value for arg in self.args if arg.value is not None}


class AnalysisRunStatus(ApiModel):
    phase: RunPhase = "Pending"
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metric_results: list[MetricResult] = Field(default_factory=list)

    def result_of(self, name: str) -> MetricResult | None:
        return next((r for r in self.metric_results if r.name == name), None)


class AnalysisRun(Resource):
    KIND: ClassVar[str] = "AnalysisRun"
    PLURAL: ClassVar[str] = "analysisruns"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ar",)

    kind: str = "AnalysisRun"
    spec: AnalysisRunSpec
    status: AnalysisRunStatus = Field(default_factory=AnalysisRunStatus)

    @property
    def done(self) -> bool:
        return self.status.phase in DONE_PHASES


register(AnalysisTemplate)
register(AnalysisRun)
