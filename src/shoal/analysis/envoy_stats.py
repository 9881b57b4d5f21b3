"""The `envoy` analysis provider: a version's success rate, request count and latency
percentiles from shoal's own Envoys, no Prometheus needed.

Each Service's version has its own Envoy cluster (`<namespace>.<service>.<pod-template-hash>`),
so `cluster.<name>.upstream_rq_<code class>` counts that version's answers and
`cluster.<name>.upstream_rq_time` holds its latency histogram. A measurement reads them from
every node through its agent's HTTP API (`GET /envoy/stats?cluster=...`, served by
`shoal.agent.http` on the node's address: Envoy's admin API itself listens on 127.0.0.1 only,
so it cannot be reached from the control plane when the node is another machine). The agent
asks its Envoy with `stat_filter` and answers `parse_stats`' entries; `read_snapshot` (the
only I/O here) collects them from every node, the same way for the embedded agent as for a
remote one. A measurement judges the WINDOW since the previous one: counters and histogram
buckets are subtracted (`window`), then the percentiles are interpolated inside the bucket
that holds them (`quantile`). Summing buckets over nodes before interpolating gives the true
percentile of all requests, which averaging per-node percentiles would not. The first
measurement of a run has no previous snapshot; its window is everything the version's cluster
has counted (its traffic so far).

Limits worth knowing: Envoy flushes histograms once a second (stats_flush_interval), so the
latency of the last second may be missing from a window; counters are exact. Bucket bounds are
Envoy's defaults (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000 ms ...), so a p99 is exact to the
bucket and linear inside it. A counter lower than in the previous snapshot means Envoy
restarted: that node's window starts from zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shoal.analysis.run import Observation
from shoal.api.analysis import EnvoyMetric

CODE_CLASSES = ("2xx", "3xx", "4xx", "5xx")
_QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}

# node|cluster -> {"2xx": n, ..., "buckets": [[upper_bound_ms, cumulative_count], ...]}
Snapshot = dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Window:
    """Answers of one version since the previous snapshot, over every node."""

    codes: dict[str, int]
    buckets: list[tuple[float, int]]  # (upper bound ms, cumulative count) in the window

    @property
    def answered(self) -> int:
        return sum(self.codes.values())

    @property
    def errors(self) -> int:
        return self.codes.get("5xx", 0)

    @property
    def samples(self) -> int:
        return self.buckets[-1][1] if self.buckets else 0


def _bucket_delta(
    now: list[list[float]], before: list[list[float]] | None
) -> list[tuple[float, int]]:
    previous = {float(b[0]): int(b[1]) for b in before or []}
    out = []
    restarted = any(int(c) < previous.get(float(u), 0) for u, c in now)
    for upper, count in now:
        base = 0 if restarted else previous.get(float(upper), 0)
        out.append((float(upper), int(count) - base))
    return out


def window(current: Snapshot, previous: Snapshot | None) -> Window:
    """What happened between two snapshots (`previous` None: everything so far)."""
    codes = dict.fromkeys(CODE_CLASSES, 0)
    merged: dict[float, int] = {}
    for key, now in current.items():
        before = (previous or {}).get(key)
        restarted = before is not None and any(
            int(now.get(c, 0)) < int(before.get(c, 0)) for c in CODE_CLASSES
        )
        for code in CODE_CLASSES:
            base = 0 if before is None or restarted else int(before.get(code, 0))
            codes[code] += int(now.get(code, 0)) - base
        old_buckets = None if before is None or restarted else before.get("buckets")
        for upper, count in _bucket_delta(now.get("buckets", []), old_buckets):
            merged[upper] = merged.get(upper, 0) + count
    return Window(codes, sorted(merged.items()))


def quantile(buckets: list[tuple[float, int]], q: float) -> float | None:
    """The q-quantile (0..1) in ms from cumulative buckets, linear inside its bucket."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    target = q * total
    lower_bound, lower_count = 0.0, 0
    for upper, count in buckets:
        if count >= target and count > lower_count:
            share = (target - lower_count) / (count - lower_count)
            return lower_bound + (upper - lower_bound) * share
        lower_bound, lower_count = upper, count
    return buckets[-1][0]


def observe(metric: EnvoyMetric, current: Snapshot, previous: Snapshot | None) -> Observation:
    """The metric's value over the window, or why it is inconclusive."""
    win = window(current, previous)
    details = {"requests": win.answered, "errors": win.errors}
    if metric.metric == "requestCount":
        return Observation(win.answered, snapshot=current, details=details)
    if metric.metric in _QUANTILES:
        if win.samples < max(metric.min_requests, 1):
            return Observation(
                inconclusive=f"{win.samples} latency samples in the window "
                f"(minRequests {metric.min_requests})",
                snapshot=current,
                details=details,
            )
        return Observation(
            quantile(win.buckets, _QUANTILES[metric.metric]), snapshot=current, details=details
        )
    if win.answered < max(metric.min_requests, 1):
        return Observation(
            inconclusive=f"{win.answered} requests in the window (minRequests "
            f"{metric.min_requests})",
            snapshot=current,
            details=details,
        )
    error_rate = win.errors / win.answered
    value = error_rate if metric.metric == "errorRate" else 1.0 - error_rate
    return Observation(value, snapshot=current, details=details)


#: The agent's endpoint for them (shoal.agent.http), and how many clusters one request may name.
AGENT_STATS_PATH = "/envoy/stats"
MAX_CLUSTERS = 64
# `<namespace>.<service>.<hash>`: DNS names joined by dots; nothing a regex could act upon.
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,250}[a-z0-9])?$")


def check_clusters(clusters: Iterable[str]) -> list[str]:
    """The cluster names of one stats request, sorted; ValueError saying which is not one."""
    names = sorted(set(clusters))
    if not names:
        raise ValueError("name at least one cluster (cluster=<namespace>.<service>.<hash>)")
    if len(names) > MAX_CLUSTERS:
        raise ValueError(f"at most {MAX_CLUSTERS} clusters per request (got {len(names)})")
    bad = [name for name in names if not _CLUSTER_NAME.match(name)]
    if bad:
        raise ValueError(f"not a cluster name: {', '.join(map(repr, bad[:3]))}")
    return names


def stat_filter(clusters: Iterable[str]) -> str:
    """Envoy's /stats filter for the answer counters and latency histogram of `clusters`."""
    names = "|".join(re.escape(c) for c in sorted(clusters))
    return rf"^cluster\.({names})\.upstream_rq_(2xx|3xx|4xx|5xx|time)$"


def admin_params(clusters: Iterable[str]) -> dict[str, str]:
    """Query parameters of Envoy's /stats for `clusters` (JSON, cumulative buckets)."""
    return {"format": "json", "filter": stat_filter(clusters), "histogram_buckets": "cumulative"}


def parse_stats(clusters: Iterable[str], body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Envoy's /stats?format=json&histogram_buckets=cumulative answer as one entry per
    cluster: {"2xx": n, ..., "buckets": [[upper_bound_ms, cumulative_count], ...]}."""
    wanted = set(clusters)
    out: dict[str, dict[str, Any]] = {c: {"buckets": []} for c in wanted}
    for entry in body.get("stats", []):
        if "name" in entry:
            cluster, _, stat = entry["name"].removeprefix("cluster.").rpartition(".upstream_rq_")
            if cluster in wanted and stat in CODE_CLASSES:
                out[cluster][stat] = int(entry["value"])
        histograms = entry.get("histograms")
        if isinstance(histograms, list):
            for histogram in histograms:
                name = str(histogram.get("name", ""))
                cluster = name.removeprefix("cluster.").removesuffix(".upstream_rq_time")
                if cluster in wanted:
                    out[cluster]["buckets"] = [
                        [float(b["upper_bound"]), int(b["cumulative"])]
                        for b in histogram.get("buckets", [])
                    ]
    return out


def node_entries(node: str, clusters: Iterable[str], answer: Mapping[str, Any]) -> Snapshot:
    """One agent's answer (`{"clusters": {name: entry}}`) as snapshot entries of `node`;
    ValueError when it is not that shape. A cluster the node does not know counts nothing."""
    found = answer.get("clusters")
    if not isinstance(found, dict):
        raise ValueError(f"node {node}: the agent's answer has no 'clusters' object")
    out: Snapshot = {}
    for cluster in sorted(set(clusters)):
        entry = found.get(cluster) or {}
        if not isinstance(entry, dict):
            raise ValueError(f"node {node}: cluster {cluster} is not an object")
        codes = {c: int(entry[c]) for c in CODE_CLASSES if c in entry}
        buckets = [[float(u), int(n)] for u, n in entry.get("buckets", [])]
        out[f"{node}|{cluster}"] = {**codes, "buckets": buckets}
    return out


async def read_snapshot(
    agents: Mapping[str, str], clusters: Iterable[str], timeout_s: float = 2.0
) -> Snapshot:
    """Every node's counters and buckets for `clusters`; `agents` maps node -> its agent's
    base URL. Raises httpx.HTTPError when a node's agent does not answer, or answers an
    error (its Envoy is down, say); ValueError for an answer of the wrong shape."""
    cluster_list = check_clusters(clusters)
    snapshot: Snapshot = {}
    async with httpx.AsyncClient(timeout=timeout_s) as http:
        for node, base_url in sorted(agents.items()):
            response = await http.get(
                f"{base_url}{AGENT_STATS_PATH}", params={"cluster": cluster_list}
            )
            if response.status_code >= 400:
                raise httpx.HTTPStatusError(
                    f"node {node}: {_reason(response)}", request=response.request, response=response
                )
            snapshot.update(node_entries(node, cluster_list, response.json()))
    return snapshot


def _reason(response: httpx.Response) -> str:
    """The Status message of an agent's error answer, else its HTTP status."""
    try:
        message = response.json().get("message")
    except ValueError:
        message = None
    return str(message) if message else f"HTTP {response.status_code}"
