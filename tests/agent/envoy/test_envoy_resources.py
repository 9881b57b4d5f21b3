"""Structural (golden) assertions on the pure builder: what Envoy gets for a given table."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.agent.envoy import (
    Destination,
    Endpoint,
    HeaderMatch,
    Mirror,
    OutlierDetection,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
    canary_routes,
    cluster_name,
    listener_name,
)
from shoal.agent.envoy.resources import (
    build_bootstrap,
    build_cluster,
    build_endpoints,
    build_listener,
    build_route_configuration,
)


def routes_of(listener: ServiceListener) -> list[dict[str, Any]]:
    config = build_route_configuration(listener)
    assert config["name"] == listener.name
    (vhost,) = config["virtual_hosts"]
    assert vhost["domains"] == ["*"]
    routes: list[dict[str, Any]] = vhost["routes"]
    return routes


def methods_of(route: dict[str, Any]) -> str | None:
    for header in route["match"].get("headers", []):
        if header["name"] == ":method":
            regex: str = header["string_match"]["safe_regex"]["regex"]
            return regex
    return None


def test_names_carry_namespace_service_and_revision() -> None:
    assert cluster_name("default", "shop", "7f9c") == "default.shop.7f9c"
    assert listener_name("default", "shop") == "default.shop"
    assert listener_name("default", "shop", preview=True) == "default.shop.preview"


def test_cluster_defaults() -> None:
    built = build_cluster(UpstreamCluster("ns.svc.abc"), "/x/eds.json", "/x")
    assert built["name"] == "ns.svc.abc" and built["type"] == "EDS"
    source = built["eds_cluster_config"]["eds_config"]
    assert source["path_config_source"] == {
        "path": "/x/eds.json",
        "watched_directory": {"path": "/x"},
    }
    assert built["connect_timeout"] == "1.000s"
    options = built["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert options["explicit_http_config"] == {"http_protocol_options": {}}  # HTTP/1.1
    assert options["common_http_protocol_options"]["idle_timeout"] == "3.000s"
    assert built["upstream_connection_options"] == {"tcp_keepalive": {}}
    (thresholds,) = built["circuit_breakers"]["thresholds"]
    assert thresholds["retry_budget"] == {
        "budget_percent": {"value": 25.0},
        "min_retry_concurrency": 64,
    }
    outlier = built["outlier_detection"]
    assert outlier["consecutive_5xx"] == 5 and outlier["consecutive_gateway_failure"] == 3
    assert outlier["enforcing_consecutive_gateway_failure"] == 100
    assert outlier["max_ejection_percent"] == 50 and outlier["base_ejection_time"] == "10.000s"
    assert outlier["failure_percentage_threshold"] == 30
    assert outlier["failure_percentage_request_volume"] == 20
    assert outlier["failure_percentage_minimum_hosts"] == 2
    assert outlier["enforcing_failure_percentage"] == 100  # Envoy's default 0 only counts
    # An ejection reaches the worker threads at once, not up to 1 s later (chaos scenario 4).
    assert built["common_lb_config"] == {"update_merge_window": "0s"}


def test_outlier_detection_can_be_turned_off_and_tuned() -> None:
    assert "outlier_detection" not in build_cluster(
        UpstreamCluster("c", outlier_detection=None), "/p", "/d"
    )
    tuned = build_cluster(
        UpstreamCluster("c", outlier_detection=OutlierDetection(consecutive_5xx=2)), "/p", "/d"
    )
    assert tuned["outlier_detection"]["consecutive_5xx"] == 2


def test_endpoints_with_and_without_weights() -> None:
    built = build_endpoints(
        UpstreamCluster("c", (Endpoint("127.0.0.1", 8001), Endpoint("127.0.0.1", 8002, weight=3)))
    )
    assert built["cluster_name"] == "c"
    (locality,) = built["endpoints"]
    first, second = locality["lb_endpoints"]
    assert first["endpoint"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 8001,
    }
    assert "load_balancing_weight" not in first and second["load_balancing_weight"] == 3
    assert build_endpoints(UpstreamCluster("empty"))["endpoints"] == []


def test_listener_uses_rds_and_no_access_log_by_default() -> None:
    listener = ServiceListener("ns.svc", 8080, (Route(Destination.single("c")),))
    built = build_listener(listener, "/r/rds.json", "/r")
    assert built["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    (chain,) = built["filter_chains"]
    hcm = chain["filters"][0]["typed_config"]
    assert hcm["stat_prefix"] == "ns.svc"
    assert hcm["rds"]["route_config_name"] == "ns.svc"
    assert hcm["rds"]["config_source"]["path_config_source"]["path"] == "/r/rds.json"
    assert "access_log" not in hcm and "route_config" not in hcm
    logged = ServiceListener("l", 1, listener.routes, access_log_path="/tmp/a.log")
    assert (
        build_listener(logged, "/r", "/r")["filter_chains"][0]["filters"][0]["typed_config"][
            "access_log"
        ][0]["typed_config"]["path"]
        == "/tmp/a.log"
    )


def test_reset_is_retried_only_for_idempotent_methods() -> None:
    listener = ServiceListener("l", 1, (Route(Destination.single("c")),), timeout_s=7)
    idempotent, other = routes_of(listener)
    assert methods_of(idempotent) == "DELETE|GET|HEAD|OPTIONS|PUT|TRACE"
    assert methods_of(other) is None  # catch-all: POST, PATCH, ...
    assert idempotent["route"]["retry_policy"]["retry_on"] == "connect-failure,refused-stream,reset"
    assert other["route"]["retry_policy"]["retry_on"] == "connect-failure,refused-stream"
    for route in (idempotent, other):
        action = route["route"]
        assert action["cluster"] == "c" and action["timeout"] == "7.000s"
        policy = action["retry_policy"]
        assert policy["num_retries"] == 2 and policy["per_try_timeout"] == "7.000s"
        (predicate,) = policy["retry_host_predicate"]
        assert predicate["name"] == "envoy.retry_host_predicates.previous_hosts"


def test_canary_route_order_overrides_then_headers_then_weights() -> None:
    routes = canary_routes(
        "s", "c", {"s": 80, "c": 20}, [HeaderMatch("x-user-group", "beta")], hash_header=None
    )
    built = routes_of(ServiceListener("l", 1, routes))
    # Each logical route is emitted twice (idempotent methods, then the rest), in order.
    logical = built[::2]
    assert [r["route"].get("cluster") for r in logical] == ["s", "c", "c", None]
    headers = [
        [h for h in r["match"].get("headers", []) if h["name"] != ":method"] for r in logical
    ]
    assert headers[0] == [{"name": "x-shoal-canary", "string_match": {"exact": "never"}}]
    assert headers[1] == [{"name": "x-shoal-canary", "string_match": {"exact": "always"}}]
    assert headers[2] == [{"name": "x-user-group", "string_match": {"exact": "beta"}}]
    assert headers[3] == []
    weighted = logical[3]["route"]["weighted_clusters"]
    assert weighted["clusters"] == [{"name": "s", "weight": 80}, {"name": "c", "weight": 20}]
    assert "use_hash_policy" not in weighted and "hash_policy" not in logical[3]["route"]


def test_sticky_hook_hashes_the_header_and_zero_weights_are_dropped() -> None:
    sticky = ServiceListener("l", 1, (Route(Destination.split({"s": 50, "c": 50}, "x-user-id")),))
    action = routes_of(sticky)[0]["route"]
    assert action["weighted_clusters"]["use_hash_policy"] is True
    assert action["hash_policy"] == [{"header": {"header_name": "x-user-id"}}]
    both = ServiceListener(
        "l", 1, (Route(Destination.split({"s": 1, "c": 1}, "x-user-id", "shoal-user")),)
    )
    assert routes_of(both)[0]["route"]["hash_policy"] == [
        {"header": {"header_name": "x-user-id"}},
        {"cookie": {"name": "shoal-user"}},
    ]
    aborted = ServiceListener("l", 1, (Route(Destination.split({"s": 100, "c": 0})),))
    assert routes_of(aborted)[0]["route"]["cluster"] == "s"


def test_mirror_only_for_listed_methods() -> None:
    listener = ServiceListener(
        "l", 1, (Route(Destination.single("p")),), mirror=Mirror("m", 12.5, ("GET", "HEAD"))
    )
    routes = routes_of(listener)
    mirrored = [r for r in routes if "request_mirror_policies" in r["route"]]
    assert [methods_of(r) for r in mirrored] == ["GET|HEAD"]
    (policy,) = mirrored[0]["route"]["request_mirror_policies"]
    assert policy["cluster"] == "m"
    assert policy["request_headers_mutations"][0]["append"]["header"] == {
        "key": "x-shoal-shadow",
        "value": "1",
    }
    assert policy["runtime_fraction"]["default_value"] == {
        "numerator": 125_000,
        "denominator": "MILLION",
    }
    # GET/HEAD: mirrored and reset-retried; other idempotent ones: reset-retried; the rest: neither.
    by_methods = {methods_of(r): r["route"] for r in routes}
    assert set(by_methods) == {"GET|HEAD", "DELETE|OPTIONS|PUT|TRACE", None}
    assert methods_of(routes[-1]) is None  # the catch-all comes last
    assert by_methods["GET|HEAD"]["retry_policy"]["retry_on"].endswith(",reset")
    assert by_methods["DELETE|OPTIONS|PUT|TRACE"]["retry_policy"]["retry_on"].endswith(",reset")
    assert "request_mirror_policies" not in by_methods["DELETE|OPTIONS|PUT|TRACE"]
    assert not by_methods[None]["retry_policy"]["retry_on"].endswith(",reset")


def test_bootstrap_admin_on_loopback_and_file_sources() -> None:
    built = build_bootstrap(
        node_id="n1",
        node_cluster="shoal",
        admin_port=9901,
        lds=("/l/lds.json", "/l"),
        cds=("/c/cds.json", "/c"),
    )
    assert built["node"] == {"id": "n1", "cluster": "shoal"}
    assert built["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9901,
    }
    lds = built["dynamic_resources"]["lds_config"]
    assert lds["path_config_source"] == {"path": "/l/lds.json", "watched_directory": {"path": "/l"}}
    assert lds["resource_api_version"] == "V3"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            RoutingTable((ServiceListener("l", 1, (Route(Destination.single("x")),)),)),
            "unknown cluster x",
        ),
        (RoutingTable(clusters=(UpstreamCluster("a"), UpstreamCluster("a"))), "duplicate cluster"),
        (
            RoutingTable(
                (
                    ServiceListener("a", 1, (Route(Destination.single("c")),)),
                    ServiceListener("b", 1, (Route(Destination.single("c")),)),
                ),
                (UpstreamCluster("c"),),
            ),
            "one port",
        ),
        (RoutingTable((ServiceListener("l", 1, ()),)), "no routes"),
        (
            RoutingTable(
                (ServiceListener("l", 1, (Route(Destination.split({"c": 0})),)),),
                (UpstreamCluster("c"),),
            ),
            "sum to 0",
        ),
        (
            RoutingTable(
                (
                    ServiceListener(
                        "l", 1, (Route(Destination.single("c")),), mirror=Mirror("m", 5)
                    ),
                ),
                (UpstreamCluster("c"),),
            ),
            "unknown cluster m",
        ),
    ],
)
def test_inconsistent_tables_are_refused(table: RoutingTable, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        table.check()
