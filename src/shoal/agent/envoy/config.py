"""The desired state of one node's data plane: a pure, typed model (`RoutingTable`) that the
agent runner builds from Services, ready pods and rollout state. `resources.py` turns it into
Envoy v3 resources; nothing here does I/O.

Naming, so that per-version statistics can be read later: cluster names are
`<namespace>.<service>.<revision-hash>` (Envoy counts `cluster.<name>.upstream_rq_*` per
version); listener and route configuration names are `<namespace>.<service>[.preview]`.
Route order matters: the first matching route wins, so header routes precede the catch-all
(`canary_routes` builds the canary order).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

IDEMPOTENT_METHODS: tuple[str, ...] = ("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE")
CANARY_OVERRIDE_HEADER = "x-shoal-canary"


def cluster_name(namespace: str, service: str, revision: str) -> str:
    """Per-version cluster name: stats of one revision are `cluster.<this>.*`."""
    return f"{namespace}.{service}.{revision}"


def listener_name(namespace: str, service: str, *, preview: bool = False) -> str:
    """Listener (and route configuration) name of a Service; preview is blue-green's second port."""
    return f"{namespace}.{service}" + (".preview" if preview else "")


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    weight: int | None = None  # load-balancing weight inside the cluster (1..128); None = equal
    # Draining: Envoy sends it no new requests but keeps it listed in /clusters, so its
    # in-flight requests (rq_active) stay visible until they finish. A removed endpoint
    # vanishes from /clusters at once, in-flight requests included: drain first, then remove.
    draining: bool = False


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Passive health: hosts that keep failing are ejected for a while. Local-origin errors
    (connect failures) count as gateway failures, so a killed pod is ejected after a few tries."""

    consecutive_5xx: int = 5
    consecutive_gateway_failure: int = 3
    interval_s: float = 1.0
    base_ejection_time_s: float = 10.0
    max_ejection_percent: int = 50
    # A host that fails often but not in a row: at 50 % errors five 5xx in a row take ~62
    # requests on average and more than 240 once in fifty times. Each interval, a host with
    # at least `failure_request_volume` requests of which `failure_percent` or more failed is
    # ejected: a healthy pod's stray error is 5 % of 20 requests; a pod failing half of them
    # stays over 30 % with near certainty from 40 requests on. At least 2 hosts, as with one
    # there is nowhere else to send its traffic.
    failure_percent: int = 30
    failure_request_volume: int = 20
    failure_minimum_hosts: int = 2


@dataclass(frozen=True, slots=True)
class UpstreamCluster:
    name: str
    endpoints: tuple[Endpoint, ...] = ()
    connect_timeout_s: float = 1.0
    # Shorter than common app servers' keep-alive (uvicorn: 5 s), so Envoy closes an idle
    # pooled connection before the app does and never sends a request into a closing socket.
    idle_timeout_s: float = 3.0
    outlier_detection: OutlierDetection | None = field(default_factory=OutlierDetection)
    max_requests: int = 10_000  # circuit breaker; Envoy's default of 1024 is low for a node proxy
    # Concurrent retries allowed: a share of the active requests, at least a floor. Envoy's
    # default (3 at once) overflows when a killed pod had more than 3 requests in flight.
    retry_budget_percent: float = 25.0
    min_retry_concurrency: int = 64


@dataclass(frozen=True, slots=True)
class ClusterWeight:
    cluster: str
    weight: int  # exact integer share; weights need not sum to 100


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a route sends traffic: one cluster, or exact integer weights over several.

    `hash_header` / `hash_cookie` are the stickiness hook: when set, Envoy picks the weighted
    cluster from a hash of that header (or cookie) instead of at random, so one user stays on
    one version; requests without it are split at random. The canary strategy
    may replace this with its own cohort hashing (header routes built from the same hash as
    feature toggles); the builder only needs a different Destination then.
    """

    weights: tuple[ClusterWeight, ...]
    hash_header: str | None = None
    hash_cookie: str | None = None

    @classmethod
    def single(cls, cluster: str) -> Destination:
        return cls(weights=(ClusterWeight(cluster, 1),))

    @classmethod
    def split(
        cls, weights: dict[str, int], hash_header: str | None = None, hash_cookie: str | None = None
    ) -> Destination:
        return cls(tuple(ClusterWeight(c, w) for c, w in weights.items()), hash_header, hash_cookie)

    def clusters(self) -> tuple[str, ...]:
        return tuple(w.cluster for w in self.weights)


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """`name` equals `exact`; or, with `int_range` (start, end), its integer value lies in
    [start, end) (sticky cohorts: the bucket header of cohort.py)."""

    name: str
    exact: str = ""
    int_range: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """A logical route: requests whose headers all match go to `destination`. Order matters:
    the first matching route wins, so header routes come before the catch-all."""

    destination: Destination
    headers: tuple[HeaderMatch, ...] = ()
    prefix: str = "/"


@dataclass(frozen=True, slots=True)
class Mirror:
    """Parallel run: copy `percent` of requests with one of `methods` to `cluster`.
    Envoy never waits for the copy's answer; copies carry `shadow_header` (so services can skip
    side effects) and Envoy appends `-shadow` to their Host header."""

    cluster: str
    percent: float
    methods: tuple[str, ...] = ("GET", "HEAD")
    shadow_header: tuple[str, str] | None = ("x-shoal-shadow", "1")


# Test knob, never for production: "1" in the agent's environment turns Envoy's retries off,
# so the chaos suite can show that its pod-kill scenario fails without them (a test of the
# test, chaos/pod_kills.py). Read when a RetryPolicy is built, the one place it matters.
DISABLE_RETRIES_VARIABLE = "SHOAL_TEST_DISABLE_RETRIES"


def default_retries() -> int:
    return 0 if os.environ.get(DISABLE_RETRIES_VARIABLE) == "1" else 2


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    num_retries: int = field(default_factory=default_retries)
    per_try_timeout_s: float | None = None  # None: one try may use the whole route timeout
    idempotent_methods: tuple[str, ...] = IDEMPOTENT_METHODS
    host_selection_attempts: int = 3  # tries to pick a host not tried before (previous_hosts)


@dataclass(frozen=True, slots=True)
class ServiceListener:
    name: str
    port: int
    routes: tuple[Route, ...]
    address: str = "127.0.0.1"
    timeout_s: float = 15.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    mirror: Mirror | None = None
    access_log_path: str | None = None  # off by default: logging every request costs throughput
    # Sticky cohorts: ("header", name) or ("cookie", name) whose value is hashed into the
    # x-shoal-cohort request header before routing (see cohort.py).
    cohort_source: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RoutingTable:
    listeners: tuple[ServiceListener, ...] = ()
    clusters: tuple[UpstreamCluster, ...] = ()

    def check(self) -> None:
        """Raise ValueError when the table is inconsistent (Envoy would reject or 503)."""
        names = [c.name for c in self.clusters]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate cluster names in {names}")
        listeners = [lst.name for lst in self.listeners]
        if len(set(listeners)) != len(listeners):
            raise ValueError(f"duplicate listener names in {listeners}")
        ports = [(lst.address, lst.port) for lst in self.listeners]
        if len(set(ports)) != len(ports):
            raise ValueError(f"two listeners on one port in {ports}")
        known = set(names)
        for lst in self.listeners:
            if not lst.routes:
                raise ValueError(f"listener {lst.name} has no routes")
            wanted = [c for r in lst.routes for c in r.destination.clusters()]
            if lst.mirror is not None:
                wanted.append(lst.mirror.cluster)
                if not 0 <= lst.mirror.percent <= 100:
                    raise ValueError(f"listener {lst.name}: mirror percent outside 0-100")
            for name in wanted:
                if name not in known:
                    raise ValueError(f"listener {lst.name} routes to unknown cluster {name}")
            for route in lst.routes:
                if any(w.weight < 0 for w in route.destination.weights):
                    raise ValueError(f"listener {lst.name}: negative weight")
                if sum(w.weight for w in route.destination.weights) <= 0:
                    raise ValueError(f"listener {lst.name}: route weights sum to 0")


def canary_routes(
    stable: str,
    canary: str,
    weights: dict[str, int],
    match: Sequence[HeaderMatch] = (),
    hash_header: str | None = None,
) -> tuple[Route, ...]:
    """The canary route order: `x-shoal-canary: never|always` overrides first, then header
    routes to the canary (e.g. x-user-group: beta), then the weighted catch-all."""
    routes = [
        Route(Destination.single(stable), (HeaderMatch(CANARY_OVERRIDE_HEADER, "never"),)),
        Route(Destination.single(canary), (HeaderMatch(CANARY_OVERRIDE_HEADER, "always"),)),
    ]
    routes += [Route(Destination.single(canary), (m,)) for m in match]
    routes.append(Route(Destination.split(weights, hash_header)))
    return tuple(routes)


def referenced_clusters(listeners: Iterable[ServiceListener]) -> set[str]:
    out: set[str] = set()
    for lst in listeners:
        out.update(c for r in lst.routes for c in r.destination.clusters())
        if lst.mirror is not None:
            out.add(lst.mirror.cluster)
    return out
