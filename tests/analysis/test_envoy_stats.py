"""Per-window statistics from Envoy snapshots: deltas of counters and histogram buckets,
summed over nodes, restarts, percentiles interpolated in their bucket, the metric values."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.analysis.envoy_stats import observe, parse_stats, quantile, window
from shoal.api.analysis import EnvoyMetric

BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250]


def entry(ok: int, bad: int, latencies: dict[float, int]) -> dict[str, Any]:
    """Counters plus cumulative buckets from {bucket upper bound: samples in it}."""
    running, buckets = 0, []
    for bound in BOUNDS:
        running += latencies.get(bound, 0)
        buckets.append([bound, running])
    return {"2xx": ok, "3xx": 0, "4xx": 0, "5xx": bad, "buckets": buckets}


def test_window_subtracts_the_previous_snapshot_and_sums_nodes() -> None:
    before = {"n1|c": entry(100, 1, {5: 100}), "n2|c": entry(50, 0, {5: 50})}
    after = {"n1|c": entry(170, 31, {5: 150, 50: 50}), "n2|c": entry(80, 0, {10: 30, 5: 50})}
    win = window(after, before)
    assert win.codes["2xx"] == 100 and win.errors == 30
    assert win.answered == 130
    assert dict(win.buckets)[5] == 50  # only new samples
    assert win.samples == 130


def test_first_window_is_everything_so_far_and_a_restart_starts_from_zero() -> None:
    now = {"n1|c": entry(10, 2, {1: 12})}
    assert window(now, None).answered == 12
    restarted = window(now, {"n1|c": entry(500, 20, {1: 520})})
    assert restarted.answered == 12
    assert restarted.samples == 12


def test_quantile_interpolates_inside_the_bucket() -> None:
    # 100 samples: 90 in (0, 10], 10 in (50, 100]
    buckets = [(10.0, 90), (50.0, 90), (100.0, 100)]
    assert quantile(buckets, 0.5) == pytest.approx(10 * 50 / 90)
    assert quantile(buckets, 0.99) == pytest.approx(50 + 50 * 9 / 10)
    assert quantile([], 0.5) is None
    assert quantile([(10.0, 0)], 0.5) is None


def metric(name: str, **more: Any) -> EnvoyMetric:
    return EnvoyMetric.model_validate({"metric": name, **more})


def test_metric_values_over_the_window() -> None:
    before = {"n|c": entry(100, 0, {5: 100})}
    after = {"n|c": entry(170, 30, {5: 180, 100: 20})}
    assert observe(metric("successRate"), after, before).value == pytest.approx(0.7)
    assert observe(metric("errorRate"), after, before).value == pytest.approx(0.3)
    assert observe(metric("requestCount"), after, before).value == 100
    p99 = observe(metric("p99"), after, before).value
    assert 50 < p99 <= 100
    assert observe(metric("successRate"), after, before).snapshot == after


def test_too_few_requests_are_inconclusive_not_a_perfect_score() -> None:
    same = {"n|c": entry(100, 0, {5: 100})}
    result = observe(metric("successRate"), same, same)
    assert result.value is None and result.inconclusive is not None
    assert "0 requests" in result.inconclusive
    few = observe(metric("p90", minRequests=50), {"n|c": entry(110, 0, {5: 110})}, same)
    assert few.inconclusive is not None
    assert observe(metric("requestCount"), same, same).value == 0


def test_parse_stats_reads_counters_and_cumulative_buckets() -> None:
    body = {
        "stats": [
            {"name": "cluster.ns.web.h1.upstream_rq_2xx", "value": 52},
            {"name": "cluster.ns.web.h1.upstream_rq_5xx", "value": 3},
            {"name": "cluster.ns.web.h2.upstream_rq_2xx", "value": 9},
            {
                "histograms": [
                    {
                        "name": "cluster.ns.web.h1.upstream_rq_time",
                        "buckets": [
                            {"upper_bound": 0.5, "interval": 0, "cumulative": 18},
                            {"upper_bound": 1, "interval": 0, "cumulative": 55},
                        ],
                    }
                ]
            },
        ]
    }
    snap = parse_stats("node-a", ["ns.web.h1"], body)
    assert snap == {"node-a|ns.web.h1": {"2xx": 52, "5xx": 3, "buckets": [[0.5, 18], [1.0, 55]]}}
