"""Noise learning and the running tally of a parallel run, per endpoint.

Each sample is one mirrored request answered by a primary, a second primary and the candidate.
`Aggregator.record` compares primary with second primary (what differs there is noise: the
service is not deterministic at that field) and primary with candidate (the differences).

Noise is learned per endpoint and per field shape (`items[*].requestId`), and judged
relatively, after Diffy: a field is noise when the primaries differ there at least once and the
candidate does not differ there much more often than they do,

    noiseCount > 0  and  candidateCount <= NOISE_FACTOR * noiseCount + NOISE_SLACK

so a random request id (differs every time, in both pairs) is noise, while a changed `price`
stays a difference even if two primaries once disagreed on it during a data update.

Judgement is retroactive: each sample's set of differing shapes (its signature) is counted, and
`status()` classifies signatures with the noise known *now*, so the first samples of a noisy
field are not counted as differences just because the noise was not learned yet. Memory stays
bounded: at most `max_endpoints` endpoints (later ones share `<other>`), `max_fields` field
shapes per endpoint (later ones share `<other fields>`) and `max_signatures` signatures per
endpoint (later ones are judged when recorded).

Pure (no I/O, no clock); called by `shoal.differ.replay`, read by `shoal.differ.publish`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from shoal.api.diffreport import (
    DiffExample,
    DiffReportStatus,
    EndpointDiffs,
    FieldDiff,
    NoisyField,
)
from shoal.differ.compare import CompareRules, Difference, Reply, body_excerpt, compare

NOISE_FACTOR = 2
NOISE_SLACK = 3
OTHER_ENDPOINT = "<other>"
OTHER_FIELDS = "<other fields>"
REQUEST_LIMIT = 200


class Outcome(Enum):
    EQUAL = "equal"
    DIFFERING = "differing"
    NOISY = "noisy"
    NOT_COMPARED = "not-compared"  # a primary gave no answer


@dataclass(frozen=True, slots=True)
class Sample:
    endpoint: str  # endpoint key, see shoal.differ.endpoints
    request: str  # method and target (path with query)
    primary: Reply
    secondary: Reply
    candidate: Reply


@dataclass(slots=True)
class _Field:
    count: int = 0
    example: DiffExample | None = None


@dataclass(slots=True)
class _Endpoint:
    compared: int = 0
    noise: Counter[str] = field(default_factory=Counter)
    signatures: Counter[frozenset[str]] = field(default_factory=Counter)
    fields: dict[str, _Field] = field(default_factory=dict)
    # Judged when recorded: signatures beyond the cap, and totals seeded from an older report.
    fixed_differing: int = 0
    fixed_noisy: int = 0

    def is_noise(self, shape: str) -> bool:
        noise = self.noise.get(shape, 0)
        if noise == 0:
            return False
        found = self.fields.get(shape)
        return (found.count if found else 0) <= NOISE_FACTOR * noise + NOISE_SLACK

    def noise_shapes(self) -> set[str]:
        return {shape for shape in self.noise if self.is_noise(shape)}


class Aggregator:
    def __init__(
        self,
        rules: CompareRules | None = None,
        *,
        max_endpoints: int = 256,
        max_signatures: int = 1024,
        max_fields: int = 256,
        body_limit: int = 512,
        top_fields: int = 10,
    ) -> None:
        self.rules = rules or CompareRules()
        self.max_endpoints = max_endpoints
        self.max_signatures = max_signatures
        self.max_fields = max_fields
        self.body_limit = body_limit
        self.top_fields = top_fields
        self.endpoints: dict[str, _Endpoint] = {}
        self.errors = 0
        self.candidate_errors = 0
        self.dropped = 0
        self.skipped = 0
        self.changes = 0  # bumped on every change, so a publisher knows when to write

    def _endpoint(self, key: str) -> _Endpoint:
        found = self.endpoints.get(key)
        if found is None:
            if len(self.endpoints) >= self.max_endpoints:
                key = OTHER_ENDPOINT
            found = self.endpoints.setdefault(key, _Endpoint())
        return found

    def record_dropped(self, count: int = 1) -> None:
        self.dropped += count
        self.changes += 1

    def record_skipped(self, count: int = 1) -> None:
        self.skipped += count
        self.changes += 1

    def record(self, sample: Sample) -> Outcome:
        """Compare one sample's answers and count it; returns how it was judged now."""
        self.changes += 1
        if sample.primary.status == 0 or sample.secondary.status == 0:
            self.errors += 1
            return Outcome.NOT_COMPARED
        endpoint = self._endpoint(sample.endpoint)
        endpoint.compared += 1
        if sample.candidate.status == 0:
            self.candidate_errors += 1
        for noise in _by_shape(compare(sample.primary, sample.secondary, self.rules)):
            endpoint.noise[self._bounded(noise.shape, endpoint.noise)] += 1
        differences = _by_shape(compare(sample.primary, sample.candidate, self.rules))
        if not differences:
            return Outcome.EQUAL
        shapes = set()
        for difference in differences:
            shape = self._bounded(difference.shape, endpoint.fields)
            if shape in shapes:
                continue
            shapes.add(shape)
            found = endpoint.fields.setdefault(shape, _Field())
            found.count += 1
            if found.example is None:
                found.example = self._example(sample, difference)
        signature = frozenset(shapes)
        differing = any(not endpoint.is_noise(shape) for shape in signature)
        if signature in endpoint.signatures or len(endpoint.signatures) < self.max_signatures:
            endpoint.signatures[signature] += 1
        elif differing:
            endpoint.fixed_differing += 1
        else:
            endpoint.fixed_noisy += 1
        return Outcome.DIFFERING if differing else Outcome.NOISY

    def _bounded(self, shape: str, known: Mapping[str, object]) -> str:
        return shape if shape in known or len(known) < self.max_fields else OTHER_FIELDS

    def _example(self, sample: Sample, difference: Difference) -> DiffExample:
        return DiffExample(
            request=sample.request[:REQUEST_LIMIT],
            path=difference.path,
            primary=difference.left,
            candidate=difference.right,
            primary_status=sample.primary.status,
            candidate_status=sample.candidate.status,
            primary_body=body_excerpt(sample.primary.body, self.body_limit),
            candidate_body=body_excerpt(sample.candidate.body, self.body_limit),
        )

    def status(self) -> DiffReportStatus:
        """The report's status now (without `lastUpdateTime`, which the publisher sets)."""
        endpoints = [self._endpoint_status(key, e) for key, e in sorted(self.endpoints.items())]
        compared = sum(e.compared for e in endpoints)
        differing = sum(e.differing for e in endpoints)
        return DiffReportStatus(
            compared=compared,
            differing=differing,
            noisy=sum(e.noisy for e in endpoints),
            errors=self.errors,
            candidate_errors=self.candidate_errors,
            dropped=self.dropped,
            skipped=self.skipped,
            diff_rate=differing / compared if compared else 0.0,
            endpoints=endpoints,
        )

    def _endpoint_status(self, key: str, endpoint: _Endpoint) -> EndpointDiffs:
        noise = endpoint.noise_shapes()
        differing, noisy = endpoint.fixed_differing, endpoint.fixed_noisy
        for signature, count in endpoint.signatures.items():
            if signature <= noise:
                noisy += count
            else:
                differing += count
        fields = sorted(
            (
                FieldDiff(path=shape, count=f.count, example=f.example)
                for shape, f in endpoint.fields.items()
                if shape not in noise
            ),
            key=lambda f: (-f.count, f.path),
        )
        noise_list = sorted(
            (NoisyField(path=shape, count=endpoint.noise[shape]) for shape in noise),
            key=lambda f: (-f.count, f.path),
        )
        return EndpointDiffs(
            endpoint=key,
            compared=endpoint.compared,
            differing=differing,
            noisy=noisy,
            fields=fields[: self.top_fields],
            noise=noise_list[: self.top_fields],
        )

    def seed(self, status: DiffReportStatus) -> None:
        """Continue an older report (a restarted differ): its counts become fixed totals, its
        fields and noise carry on, so `compared` never goes backwards."""
        self.errors += status.errors
        self.candidate_errors += status.candidate_errors
        self.dropped += status.dropped
        self.skipped += status.skipped
        for old in status.endpoints:
            endpoint = self._endpoint(old.endpoint)
            endpoint.compared += old.compared
            endpoint.fixed_differing += old.differing
            endpoint.fixed_noisy += old.noisy
            for noisy in old.noise:
                endpoint.noise[noisy.path] += noisy.count
            for diff in old.fields:
                found = endpoint.fields.setdefault(diff.path, _Field())
                found.count += diff.count
                found.example = found.example or diff.example
        self.changes += 1


def _by_shape(differences: list[Difference]) -> list[Difference]:
    """The first difference of each shape: a sample counts once per field shape."""
    seen: dict[str, Difference] = {}
    for difference in differences:
        seen.setdefault(difference.shape, difference)
    return list(seen.values())
