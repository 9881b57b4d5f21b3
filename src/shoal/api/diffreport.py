"""DiffReport: what a parallel run has found so far, written by the differ, read by the gate.

One report per (deployment, candidate revision), named `report_name(deployment, hash)`
(`web-7d9f8c`). The spec says what is compared; the status is the differ's running tally:

- totals: `compared` samples (a request answered by the primary, a second primary and the
  candidate), `differing` (the candidate differed at a field that is not noise), `noisy`
  (it differed only at noise fields), `errors` (a primary gave no answer: not compared),
  `dropped` (the differ was overloaded and let the sample go), `skipped` (method not mirrored
  or no instance to replay to), `candidateErrors` (the candidate gave no answer: a difference
  at `:status`), and `diffRate = differing / compared`;
- `endpoints`: the same counts per endpoint (`GET /orders/{id}`), the top differing fields
  with one example pair each (values and bodies truncated) and the fields learned as noise.

Field paths are those of `shoal.differ.compare`: `:status`, `:header.<name>`, body paths such
as `items[*].price` (array indices generalized; the example keeps the concrete `items[3]`).

Writers: the differ (`shoal.differ.publish`, status subresource). Readers: the ParallelRun gate
(`shoal.controllers.strategies.parallel`), `shoal rollout diffs` (`shoal.cli.diffs`).
Registered with `shoal.api.registry` on import (plural `diffreports`, short name `diffs`).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from shoal.api.base import ApiModel
from shoal.api.meta import Resource
from shoal.api.registry import register


def report_name(deployment: str, candidate_hash: str | None) -> str:
    """The report of `deployment`'s candidate revision: `<deployment>-<hash>`."""
    return f"{deployment}-{candidate_hash}" if candidate_hash else deployment


class DiffExample(ApiModel):
    """One sample where the candidate differed at a field: request, values, both answers."""

    request: str  # "GET /orders/12?expand=1", truncated
    path: str  # the concrete field path, e.g. items[3].price
    primary: str  # the value at `path` (JSON text, truncated) or <missing>
    candidate: str
    primary_status: int
    candidate_status: int
    primary_body: str = ""  # truncated
    candidate_body: str = ""


class FieldDiff(ApiModel):
    path: str  # generalized: items[*].price
    count: int = Field(ge=0)  # samples where the candidate differed here
    example: DiffExample | None = None


class NoisyField(ApiModel):
    path: str
    count: int = Field(ge=0)  # samples where the two primaries differed here


class EndpointDiffs(ApiModel):
    endpoint: str  # method + path template
    compared: int = 0
    differing: int = 0
    noisy: int = 0
    fields: list[FieldDiff] = Field(default_factory=list)
    noise: list[NoisyField] = Field(default_factory=list)


class DiffReportSpec(ApiModel):
    deployment: str = Field(min_length=1)
    primary_revision: str | None = None
    candidate_revision: str | None = None


class DiffReportStatus(ApiModel):
    compared: int = 0
    differing: int = 0
    noisy: int = 0
    errors: int = 0
    candidate_errors: int = 0
    dropped: int = 0
    skipped: int = 0
    diff_rate: float = 0.0
    endpoints: list[EndpointDiffs] = Field(default_factory=list)
    last_update_time: datetime | None = None

    def top_fields(self, limit: int = 5) -> list[tuple[str, FieldDiff]]:
        """(endpoint, field) pairs over all endpoints, most frequent first."""
        pairs = [(e.endpoint, f) for e in self.endpoints for f in e.fields]
        pairs.sort(key=lambda pair: (-pair[1].count, pair[0], pair[1].path))
        return pairs[:limit]


class DiffReport(Resource):
    KIND: ClassVar[str] = "DiffReport"
    PLURAL: ClassVar[str] = "diffreports"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("diffreport", "diffs")

    kind: str = "DiffReport"
    spec: DiffReportSpec
    status: DiffReportStatus = Field(default_factory=DiffReportStatus)


register(DiffReport)
