"""`strategy.parallelRun`: the settings of a ParallelRun rollout.

    strategy:
      type: ParallelRun
      parallelRun:
        mirrorPercent: 20        # share of live requests copied to the differ (0..100)
        methods: [GET, HEAD]     # only these are mirrored; the default is the safe methods
        duration: 10m            # compare at least this long (30s, 10m, 1h30m, or seconds)
        minSamples: 500          # and at least this many compared requests
        maxDiffRate: 0.01        # more differing samples than this share aborts (0..1)
        compare:
          ignoreHeaders: [x-request-id]
          ignoreFields: [generatedAt, items[*].etag]   # JSON paths, see shoal.differ.fieldpaths
          statusOnly: false
        then: promote            # or pause: wait for `shoal rollout promote`

Unknown keys are rejected with their field path (`ApiModel` forbids extras), as are a rate
outside 0..1, a percentage outside 0..100, an unparseable duration or field path, and a
method that is not an HTTP token. Non-idempotent methods (POST...) are mirrored only when the
user lists them: a mirrored request really runs on the candidate and on two primaries (the
comparison pods of `shoal.controllers.parallel_run`, not the live ones; `x-shoal-shadow: 1`
tells them it is a copy, so that they can skip side effects).

Used by the Deployment strategy union (`DeploymentStrategy.parallel_run`), the ParallelRun gate
(`shoal.controllers.strategies.parallel`) and the differ's configuration (`compare`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from shoal.api.base import ApiModel
from shoal.differ.fieldpaths import PathSyntaxError, parse_pattern

DEFAULT_METHODS = ("GET", "HEAD")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")


def parse_duration_seconds(value: str | float) -> float:
    """`90` → 90.0, `"30s"` → 30.0, `"10m"` → 600.0, `"1h30m"` → 5400.0. Raises ValueError."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds, position = 0.0, 0
            while position < len(text):
                match = _DURATION_PART.match(text, position)
                if match is None:
                    raise ValueError(
                        f"{value!r} is not a duration (examples: 30s, 10m, 1h30m, 90)"
                    ) from None
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                position = match.end()
            if not text:
                raise ValueError("empty duration (examples: 30s, 10m, 1h30m, 90)") from None
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def _check_duration(value: str | float) -> str | float:
    parse_duration_seconds(value)
    return value


def _check_field_path(text: str) -> str:
    try:
        parse_pattern(text)
    except PathSyntaxError as error:
        raise ValueError(str(error)) from None
    return text


def _check_header_name(name: str) -> str:
    if not _TOKEN.match(name):
        raise ValueError(f"{name!r} is not a header name")
    return name.lower()


def _check_method(method: str) -> str:
    if not _TOKEN.match(method):
        raise ValueError(f"{method!r} is not an HTTP method")
    return method.upper()


FieldPattern = Annotated[str, AfterValidator(_check_field_path)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]
Method = Annotated[str, AfterValidator(_check_method)]
Duration = Annotated[str | float, AfterValidator(_check_duration)]


class CompareSettings(ApiModel):
    """What counts as a difference. The differ always ignores hop-by-hop headers and `date`."""

    ignore_headers: list[HeaderName] = Field(default_factory=list)
    ignore_fields: list[FieldPattern] = Field(default_factory=list)
    status_only: bool = False


class ParallelRunSettings(ApiModel):
    mirror_percent: float = Field(default=10.0, ge=0, le=100)
    methods: list[Method] = Field(default_factory=lambda: list(DEFAULT_METHODS), min_length=1)
    duration: Duration | None = None
    min_samples: int = Field(default=100, ge=1)
    max_diff_rate: float = Field(default=0.01, ge=0, le=1)
    compare: CompareSettings = Field(default_factory=CompareSettings)
    then: Literal["promote", "pause"] = "promote"

    @field_validator("methods")
    @classmethod
    def _unique_methods(cls, methods: list[str]) -> list[str]:
        repeated = sorted({m for m in methods if methods.count(m) > 1})
        if repeated:
            raise ValueError(f"methods must be unique (repeated: {', '.join(repeated)})")
        return methods

    @property
    def duration_seconds(self) -> float:
        """The minimum comparison time in seconds (0 when only minSamples counts)."""
        return 0.0 if self.duration is None else parse_duration_seconds(self.duration)
