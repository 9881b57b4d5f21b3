"""Per-window statistics from Envoy snapshots: deltas of counters and histogram buckets,
summed over nodes, restarts, percentiles interpolated in their bucket, the metric values."""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest

from shoal.analysis.envoy_stats import (
    MAX_CLUSTERS,
    check_clusters,
    node_entries,
    observe,
    parse_stats,
    quantile,
    stat_filter,
    window,
)
from shoal.api.analysis import EnvoyMetric, EnvoyMetricName

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


def test_every_accepted_metric_name_has_its_own_value() -> None:
    """A name the API accepts but `observe` does not know would silently measure the success
    rate (as `requestRate` once did)."""
    before = {"n|c": entry(100, 0, {0.5: 100})}
    after = {"n|c": entry(170, 30, {0.5: 100, 1: 50, 5: 40, 100: 10})}
    expected = {"successRate": 0.7, "errorRate": 0.3, "requestCount": 100}
    names = get_args(EnvoyMetricName)
    values = {name: observe(metric(name), after, before).value for name in names}
    for name, value in expected.items():
        assert values.pop(name) == pytest.approx(value), name
    assert values["p50"] <= 1 < values["p90"] <= 5 < values["p99"] <= 100
    assert sorted(values) == ["p50", "p90", "p99"]


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
    assert parse_stats(["ns.web.h1", "ns.web.h3"], body) == {
        "ns.web.h1": {"2xx": 52, "5xx": 3, "buckets": [[0.5, 18], [1.0, 55]]},
        "ns.web.h3": {"buckets": []},  # a cluster Envoy does not know counts nothing
    }


def test_the_admin_filter_matches_the_named_clusters_answer_stats_only() -> None:
    pattern = re.compile(stat_filter(["ns.web.h1", "ns.api.h2"]))
    for wanted in ("2xx", "3xx", "4xx", "5xx", "time"):
        assert pattern.search(f"cluster.ns.web.h1.upstream_rq_{wanted}")
        assert pattern.search(f"cluster.ns.api.h2.upstream_rq_{wanted}")
    for other in (
        "cluster.ns.web.h1.upstream_rq_total",  # another stat
        "cluster.ns.web.h1x.upstream_rq_2xx",  # another cluster sharing a prefix
        "cluster.nsXweb.h1.upstream_rq_2xx",  # dots are literal
        "cluster.shoal_xds.upstream_rq_2xx",
        "server.live",
    ):
        assert not pattern.search(other), other


def test_cluster_names_are_checked_before_they_reach_a_regex() -> None:
    assert check_clusters(["b.web.h", "a.web.h", "b.web.h"]) == ["a.web.h", "b.web.h"]
    for bad in ([], [".*"], ["a|b"], ["ns.web.h)|(x"], ["UPPER.web.h"], ["ns.web.h."]):
        with pytest.raises(ValueError):
            check_clusters(bad)
    with pytest.raises(ValueError, match=f"at most {MAX_CLUSTERS}"):
        check_clusters([f"ns.web.h{i}" for i in range(MAX_CLUSTERS + 1)])


def test_node_entries_key_by_node_and_reject_other_shapes() -> None:
    answer = {"clusters": {"ns.web.h1": {"2xx": 5, "5xx": 1, "buckets": [[1, 6]]}}}
    assert node_entries("n1", ["ns.web.h1", "ns.web.h2"], answer) == {
        "n1|ns.web.h1": {"2xx": 5, "5xx": 1, "buckets": [[1.0, 6]]},
        "n1|ns.web.h2": {"buckets": []},
    }
    with pytest.raises(ValueError, match="no 'clusters'"):
        node_entries("n1", ["ns.web.h1"], {"stats": []})
    with pytest.raises(ValueError, match="not an object"):
        node_entries("n1", ["ns.web.h1"], {"clusters": {"ns.web.h1": [1, 2]}})
