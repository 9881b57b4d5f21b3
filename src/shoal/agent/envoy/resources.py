"""The pure builder from the data-plane model (config.py) to Envoy v3 resources: plain dicts,
ready to be written as xDS files by the writer (its only caller). No I/O, so every routing
decision is unit tested structurally.

Choices worth knowing:
- Routes live in RDS (one route configuration per listener), not inline in LDS. Envoy drains a
  listener whose config changes, and keep-alive connections on a draining listener keep the OLD
  routes; with RDS a weight change applies to every connection at once, which blue-green and
  canary switches need ("no request served by a mix after the switch is confirmed").
- Retries: `connect-failure` and `refused-stream` mean the upstream never saw the request, so they
  are retried for every method. Envoy's `reset` retries any method, yet a reset can come after the
  upstream acted, so `reset` is only enabled on routes that match idempotent methods (RFC 9110:
  GET, HEAD, OPTIONS, TRACE, PUT, DELETE; configurable). Each logical route is therefore emitted
  as one Envoy route per method class, then a catch-all route for the other methods.
- Mirroring follows the same split: only the listed methods (default GET, HEAD) are mirrored.
- Stats: cluster names are `<namespace>.<service>.<revision-hash>` so per-version counters and
  latency histograms are read as `cluster.<name>.upstream_rq_*` (see admin.py).
"""

from __future__ import annotations

from typing import Any

from shoal.agent.envoy.cohort import cohort_filter
from shoal.agent.envoy.config import (
    Destination,
    HeaderMatch,
    ServiceListener,
    UpstreamCluster,
)

_TYPE = "@type"
_HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_PREVIOUS_HOSTS = (
    "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
)
_FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
ENDPOINTS_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


def build_cluster(cluster: UpstreamCluster, eds_path: str, eds_dir: str) -> dict[str, Any]:
    """A CDS cluster of type EDS whose endpoints come from its own watched file."""
    out: dict[str, Any] = {
        _TYPE: CLUSTER_TYPE,
        "name": cluster.name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": path_source(eds_path, eds_dir)},
        "connect_timeout": _duration(cluster.connect_timeout_s),
        "lb_policy": "ROUND_ROBIN",
        # Apply host changes to the worker threads at once. Envoy's default merge window (1 s)
        # holds back updates that add or remove no host -- an outlier ejection, a DRAINING
        # endpoint -- for up to a second after the previous update: /clusters shows the host
        # ejected while the workers keep sending it its full share (chaos scenario 4 measured
        # ~40 failed requests in that second, 1.6 % of its 5 s window). The window protects
        # big clusters with costly load balancers (ring hash over thousands of hosts); a
        # node's round-robin clusters of a few pods rebuild in microseconds.
        "common_lb_config": {"update_merge_window": "0s"},
        "upstream_connection_options": {"tcp_keepalive": {}},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                _TYPE: _HTTP_OPTIONS,
                "common_http_protocol_options": {"idle_timeout": _duration(cluster.idle_timeout_s)},
                "explicit_http_config": {"http_protocol_options": {}},
            }
        },
        "circuit_breakers": {
            "thresholds": [
                {
                    "max_connections": cluster.max_requests,
                    "max_pending_requests": cluster.max_requests,
                    "max_requests": cluster.max_requests,
                    "retry_budget": {
                        "budget_percent": {"value": cluster.retry_budget_percent},
                        "min_retry_concurrency": cluster.min_retry_concurrency,
                    },
                }
            ]
        },
    }
    od = cluster.outlier_detection
    if od is not None:
        # Small clusters stay served: Envoy ejects at least one host whatever
        # max_ejection_percent says, but when fewer than half of the hosts are left (its
        # default healthy_panic_threshold, 50 %) it balances over all of them again, so a
        # one- or two-pod Service is never left with no host. 5xx answers are not retried
        # (retry_on in _route_action): such a request reached the application, which may have
        # acted on it, and retrying every 5xx multiplies the load on a service that fails
        # because it is overloaded; this detector takes the failing pod out instead.
        out["outlier_detection"] = {
            "consecutive_5xx": od.consecutive_5xx,
            "consecutive_gateway_failure": od.consecutive_gateway_failure,
            "enforcing_consecutive_gateway_failure": 100,
            "interval": _duration(od.interval_s),
            "base_ejection_time": _duration(od.base_ejection_time_s),
            "max_ejection_percent": od.max_ejection_percent,
            # Evaluated every interval next to consecutive_5xx (Envoy only reports it unless
            # enforcing is set).
            "failure_percentage_threshold": od.failure_percent,
            "failure_percentage_request_volume": od.failure_request_volume,
            "failure_percentage_minimum_hosts": od.failure_minimum_hosts,
            "enforcing_failure_percentage": 100,
        }
    return out


def build_endpoints(cluster: UpstreamCluster) -> dict[str, Any]:
    lb_endpoints: list[dict[str, Any]] = []
    for ep in cluster.endpoints:
        entry: dict[str, Any] = {
            "endpoint": {"address": {"socket_address": {"address": ep.host, "port_value": ep.port}}}
        }
        if ep.weight is not None:
            entry["load_balancing_weight"] = ep.weight
        if ep.draining:
            entry["health_status"] = "DRAINING"
        lb_endpoints.append(entry)
    return {
        _TYPE: ENDPOINTS_TYPE,
        "cluster_name": cluster.name,
        "endpoints": [{"lb_endpoints": lb_endpoints}] if lb_endpoints else [],
    }


def build_listener(listener: ServiceListener, rds_path: str, rds_dir: str) -> dict[str, Any]:
    hcm: dict[str, Any] = {
        _TYPE: _HCM,
        "stat_prefix": listener.name,
        "codec_type": "AUTO",
        "rds": {
            "route_config_name": listener.name,
            "config_source": path_source(rds_path, rds_dir),
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {_TYPE: _ROUTER}}],
    }
    if listener.cohort_source is not None:
        hcm["http_filters"].insert(0, cohort_filter(listener.cohort_source))
    if listener.access_log_path is not None:
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {_TYPE: _FILE_LOG, "path": listener.access_log_path},
            }
        ]
    return {
        _TYPE: LISTENER_TYPE,
        "name": listener.name,
        "address": {"socket_address": {"address": listener.address, "port_value": listener.port}},
        # Envoy binds with SO_REUSEPORT by default: a second shoal (or any Envoy) on the same
        # port would then silently share its traffic. A taken port must be an error instead.
        "enable_reuse_port": False,
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def _method_classes(listener: ServiceListener) -> list[tuple[tuple[str, ...], bool, bool]]:
    """Named methods grouped by (reset retried, mirrored), fallback class last with no names."""
    idempotent = {m.upper() for m in listener.retry.idempotent_methods}
    mirrored = {m.upper() for m in listener.mirror.methods} if listener.mirror else set()
    groups: dict[tuple[bool, bool], list[str]] = {}
    for method in sorted(idempotent | mirrored):
        groups.setdefault((method in idempotent, method in mirrored), []).append(method)
    # The catch-all is (no reset, no mirror); classes equal to it need no route of their own.
    classes = [(tuple(ms), r, m) for (r, m), ms in sorted(groups.items()) if r or m]
    classes.append(((), False, False))
    return classes


def _route_action(
    listener: ServiceListener, dest: Destination, reset: bool, mirrored: bool
) -> dict[str, Any]:
    retry = listener.retry
    retry_on = "connect-failure,refused-stream" + (",reset" if reset else "")
    action: dict[str, Any] = {
        "timeout": _duration(listener.timeout_s),
        "retry_policy": {
            "retry_on": retry_on,
            "num_retries": retry.num_retries,
            "per_try_timeout": _duration(retry.per_try_timeout_s or listener.timeout_s),
            "retry_host_predicate": [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {_TYPE: _PREVIOUS_HOSTS},
                }
            ],
            "host_selection_retry_max_attempts": retry.host_selection_attempts,
        },
    }
    live = [w for w in dest.weights if w.weight > 0]
    if len(live) == 1:
        action["cluster"] = live[0].cluster
    else:
        weighted: dict[str, Any] = {
            "clusters": [{"name": w.cluster, "weight": w.weight} for w in live]
        }
        hash_policy: list[dict[str, Any]] = []
        if dest.hash_header is not None:
            hash_policy.append({"header": {"header_name": dest.hash_header}})
        if dest.hash_cookie is not None:
            hash_policy.append({"cookie": {"name": dest.hash_cookie}})
        if hash_policy:
            weighted["use_hash_policy"] = True
            action["hash_policy"] = hash_policy
        action["weighted_clusters"] = weighted
    if mirrored and listener.mirror is not None:
        mirror = listener.mirror
        policy: dict[str, Any] = {
            "cluster": mirror.cluster,
            "runtime_fraction": {
                "default_value": {
                    "numerator": round(mirror.percent * 10_000),
                    "denominator": "MILLION",
                }
            },
        }
        if mirror.shadow_header is not None:
            name, value = mirror.shadow_header
            policy["request_headers_mutations"] = [
                {
                    "append": {
                        "header": {"key": name, "value": value},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    }
                }
            ]
        action["request_mirror_policies"] = [policy]
    return action


def _header_match(match: HeaderMatch) -> dict[str, Any]:
    if match.int_range is not None:
        start, end = match.int_range
        return {"name": match.name, "range_match": {"start": start, "end": end}}
    return {"name": match.name, "string_match": {"exact": match.exact}}


def build_route_configuration(listener: ServiceListener) -> dict[str, Any]:
    """RDS resource of one listener: each logical route once per method class, in order."""
    envoy_routes: list[dict[str, Any]] = []
    classes = _method_classes(listener)
    for route in listener.routes:
        for methods, reset, mirrored in classes:
            headers = [_header_match(h) for h in route.headers]
            if methods:
                regex = "|".join(methods)
                headers.append(
                    {"name": ":method", "string_match": {"safe_regex": {"regex": regex}}}
                )
            match: dict[str, Any] = {"prefix": route.prefix}
            if headers:
                match["headers"] = headers
            envoy_routes.append(
                {
                    "match": match,
                    "route": _route_action(listener, route.destination, reset, mirrored),
                }
            )
    return {
        _TYPE: ROUTE_TYPE,
        "name": listener.name,
        "virtual_hosts": [{"name": listener.name, "domains": ["*"], "routes": envoy_routes}],
    }


def path_source(path: str, watched_dir: str) -> dict[str, Any]:
    """File-based xDS source: Envoy reloads `path` when a file is renamed into `watched_dir`."""
    return {
        "path_config_source": {"path": path, "watched_directory": {"path": watched_dir}},
        "resource_api_version": "V3",
    }


def build_bootstrap(
    *, node_id: str, node_cluster: str, admin_port: int, lds: tuple[str, str], cds: tuple[str, str]
) -> dict[str, Any]:
    """Envoy's bootstrap: admin on 127.0.0.1 only, listeners and clusters from watched files.
    `lds`/`cds` are (file path, watched directory). Histograms are flushed every second so the
    latency percentiles read by canary analysis are at most a second old."""
    return {
        "node": {"id": node_id, "cluster": node_cluster},
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "dynamic_resources": {"lds_config": path_source(*lds), "cds_config": path_source(*cds)},
        "stats_flush_interval": "1s",
    }
