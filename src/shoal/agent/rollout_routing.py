"""Routing of Services whose Deployment rolls out with BlueGreen or Canary, and the report of
what this node's Envoy confirmed.

`service_routes(service, deployment, endpoints)` (pure) turns the Deployment's
`status.rollout.traffic` into Envoy resources:

- one cluster per revision, `<namespace>.<service>.<pod-template-hash>`, so Envoy counts each
  version apart (the analysis reads those counters);
- Canary, routes in order: `x-shoal-canary: never` -> stable, `always` -> canary; the header
  routes of setHeaderRoute (all rules of a step must match) -> canary; with stickiness and a
  weight strictly between 0 and 100, requests whose cohort bucket (cohort.py: the toggles'
  `bucket()`) is <= weight -> canary and the others -> stable; then the rest by exact
  integer weights (Envoy weighted clusters);
- BlueGreen: the Service's port -> the active version only; `previewPort` -> the new version
  only (the active one while there is none);
- before the controller wrote any rollout state: the default single cluster.

Weights, header routes and the active version live in RDS, so a switch is one route update
that applies to every connection at once; the controller counts it only once every node
confirmed it: `RolloutRouting.tracking` remembers which traffic versions a computed table
carries, `RolloutRouting.confirming` wraps the Envoy sink and, once Envoy confirmed that
table, writes the versions to `Node.status.traffic` (`TrafficReporter`).

Used by the agent runner (`route_builder`, and the wrapped sink and source of its data plane).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from shoal.agent import parallel_routing, switch_trace
from shoal.agent.envoy import (
    CANARY_OVERRIDE_HEADER,
    AppliedVersions,
    Destination,
    EnvoySink,
    HeaderMatch,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
    cluster_name,
    listener_name,
)
from shoal.agent.envoy.cohort import COHORT_HEADER
from shoal.agent.routing import (
    Membership,
    PodEndpoint,
    ServiceRouting,
    service_listener,
    single_cluster,
)
from shoal.agent.switch_trace import SwitchTrace, TableStamps
from shoal.api.deployment import POD_TEMPLATE_HASH_LABEL, PROGRESSIVE_TYPES, Deployment
from shoal.api.errors import Conflict, NotFound
from shoal.api.node import Node
from shoal.api.rollout import TrafficRouting, selector_matches, traffic_key
from shoal.api.service import Service
from shoal.client import AsyncClient

log = logging.getLogger(__name__)

RoutingSource = Callable[[], tuple[RoutingTable, Membership]]


def deployment_of(service: Service, deployments: Iterable[Deployment]) -> Deployment | None:
    """The BlueGreen/Canary Deployment whose pods the Service selects (first by name)."""
    found = [
        d
        for d in deployments
        if d.metadata.namespace == service.metadata.namespace
        and d.spec.strategy.type in PROGRESSIVE_TYPES
        and selector_matches(service.spec.selector, d.spec.template.metadata.labels)
    ]
    return min(found, key=lambda d: d.metadata.name) if found else None


def _canary_routes(
    deployment: Deployment, traffic: TrafficRouting, stable: str, canary: str | None
) -> tuple[Route, ...]:
    routes = [Route(Destination.single(stable), (HeaderMatch(CANARY_OVERRIDE_HEADER, "never"),))]
    if canary is None:
        return (*routes, Route(Destination.single(stable)))
    routes.append(
        Route(Destination.single(canary), (HeaderMatch(CANARY_OVERRIDE_HEADER, "always"),))
    )
    if traffic.header_routes:
        matches = tuple(HeaderMatch(m.header, m.exact) for m in traffic.header_routes)
        routes.append(Route(Destination.single(canary), matches))
    weight = traffic.weight
    settings = deployment.spec.strategy.canary
    if settings is not None and settings.stickiness is not None and 0 < weight < 100:
        inside = HeaderMatch(COHORT_HEADER, int_range=(1, weight + 1))
        outside = HeaderMatch(COHORT_HEADER, int_range=(weight + 1, 101))
        routes.append(Route(Destination.single(canary), (inside,)))
        routes.append(Route(Destination.single(stable), (outside,)))
    routes.append(Route(Destination.split({stable: 100 - weight, canary: weight})))
    return tuple(routes)


def _cohort_source(deployment: Deployment) -> tuple[str, str] | None:
    settings = deployment.spec.strategy.canary
    if deployment.spec.strategy.type != "Canary" or settings is None:
        return None
    sticky = settings.stickiness
    if sticky is None:
        return None
    return ("header", sticky.header) if sticky.header else ("cookie", sticky.cookie or "")


def service_routes(
    service: Service, deployment: Deployment, endpoints: Sequence[PodEndpoint]
) -> ServiceRouting:
    """The listener(s), per-revision clusters and placements of one Service (pure)."""
    rollout = deployment.status.rollout
    traffic = rollout.traffic if rollout is not None else TrafficRouting()
    if traffic.stable is None:
        return single_cluster(service, endpoints)
    namespace = service.metadata.namespace or "default"

    def cluster_of(revision: str) -> str:
        return cluster_name(namespace, service.metadata.name, revision)

    groups: dict[str, list[PodEndpoint]] = {traffic.stable: []}
    if traffic.canary is not None:
        groups[traffic.canary] = []
    for endpoint in endpoints:
        revision = endpoint.pod.metadata.labels.get(POD_TEMPLATE_HASH_LABEL, "unlabelled")
        groups.setdefault(revision, []).append(endpoint)
    clusters = tuple(
        UpstreamCluster(cluster_of(revision), tuple(e.endpoint() for e in members))
        for revision, members in sorted(groups.items())
    )
    placements = {
        e.uid: (e.placement(cluster_of(revision)),)
        for revision, members in groups.items()
        for e in members
    }
    stable = cluster_of(traffic.stable)
    canary = cluster_of(traffic.canary) if traffic.canary is not None else None
    extra: tuple[ServiceListener, ...] = ()
    if deployment.spec.strategy.type == "Canary":
        routes = _canary_routes(deployment, traffic, stable, canary)
    else:
        routes = (Route(Destination.single(stable)),)
        settings = deployment.spec.strategy.blue_green
        if settings is not None and settings.preview_port is not None:
            preview = ServiceListener(
                name=listener_name(namespace, service.metadata.name, preview=True),
                port=settings.preview_port,
                routes=(Route(Destination.single(canary or stable)),),
                timeout_s=service.spec.timeout_seconds,
            )
            extra = (preview,)
    listener = replace(service_listener(service, routes), cohort_source=_cohort_source(deployment))
    return ServiceRouting(
        listener=listener, clusters=clusters, placements=placements, extra_listeners=extra
    )


def traffic_versions(deployments: Iterable[Deployment]) -> dict[str, int]:
    """What a table computed from these Deployments routes: their traffic versions."""
    return {
        traffic_key(d.metadata.namespace, d.metadata.name): d.status.rollout.traffic.version
        for d in deployments
        if d.spec.strategy.type in PROGRESSIVE_TYPES and d.status.rollout is not None
    }


class TrafficReporter:
    """Writes the confirmed traffic versions to this node's `Node.status.traffic`: the latest
    value wins, one write at a time, re-read and retried on conflict. Each version that changed
    is logged once written, with its stage times (switch_trace.py)."""

    def __init__(self, client: AsyncClient, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self.pending: tuple[dict[str, int], TableStamps | None] | None = None
        self.written: dict[str, int] | None = None
        self._node: Node | None = None  # as the last write returned it
        self._task: asyncio.Task[None] | None = None

    def report(self, versions: dict[str, int], stamps: TableStamps | None = None) -> None:
        if versions == self.written or (self.pending and versions == self.pending[0]):
            return
        self.pending = (versions, stamps)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self.pending is not None:
            (versions, stamps), self.pending = self.pending, None
            try:
                await self._write(versions)
            except Exception as error:  # the server is away: the next confirm retries
                log.warning("could not report confirmed traffic: %s", error)
                self._node = None
                return
            reported = time.time()
            before, self.written = self.written or {}, versions
            for key, version in sorted(versions.items()):
                if stamps is not None and version != before.get(key):
                    log.info(switch_trace.line(self.node_name, key, version, stamps, reported))

    async def _write(self, versions: dict[str, int]) -> None:
        """Compare-and-set on the Node this reporter wrote last (the heartbeat writes the same
        status, so a blind write could undo it): one request while no heartbeat came between,
        a re-read and a second one when one did."""
        node = self._node
        for _ in range(10):
            if node is None:
                node = await self.client.get(Node, self.node_name)
                if node.status.traffic == versions:
                    self._node = node
                    return
            node = node.model_copy(deep=True)
            node.status.traffic = versions
            try:
                self._node = await self.client.update_status(node)
                return
            except Conflict:
                node = self._node = None
        raise Conflict(f"node {self.node_name}: traffic report kept conflicting")

    async def wait_idle(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


class _ConfirmingSink:
    """An EnvoySink that reports the traffic versions of each table Envoy confirmed."""

    def __init__(self, inner: EnvoySink, routing: RolloutRouting) -> None:
        self.inner = inner
        self.routing = routing

    async def apply(self, table: RoutingTable) -> AppliedVersions:
        applied = await self.inner.apply(table)
        self.routing.confirmed(table)
        return applied

    async def wait_drained(self, cluster: str, host: str, port: int, timeout_s: float) -> bool:
        return await self.inner.wait_drained(cluster, host, port, timeout_s)


class RolloutRouting:
    """The agent's rollout routing: the Service route builder and the confirmation report."""

    def __init__(
        self,
        deployments: Callable[[], Iterable[Deployment]],
        reporter: TrafficReporter | None = None,
    ) -> None:
        self.deployments = deployments
        self.reporter = reporter
        self.trace = SwitchTrace()
        self._computed: tuple[RoutingTable, dict[str, int], TableStamps] | None = None

    def saw(self, deployment: Deployment) -> bool:
        """A Deployment event reached the agent (the runner's informer handler): note when a
        new traffic version arrived; True when it is one (a switch to apply at once)."""
        return self.trace.saw(traffic_versions([deployment]))

    def build(self, service: Service, endpoints: Sequence[PodEndpoint]) -> ServiceRouting:
        # ParallelRun's differ Pods never serve live traffic; they are its mirror target.
        live, differs = parallel_routing.split_differ(endpoints)
        deployment = deployment_of(service, self.deployments())
        if deployment is None:
            routing = single_cluster(service, live)
        else:
            routing = service_routes(service, deployment, live)
        return parallel_routing.with_mirror(routing, service, deployment, differs)

    def tracking(self, source: RoutingSource) -> RoutingSource:
        """`source`, remembering the traffic versions of the table it computes."""

        def compute() -> tuple[RoutingTable, Membership]:
            versions = traffic_versions(self.deployments())
            stamps = self.trace.stamps(versions)
            table, membership = source()
            self._computed = (table, versions, stamps)
            return table, membership

        return compute

    def confirming(self, sink: EnvoySink) -> EnvoySink:
        return _ConfirmingSink(sink, self)

    def confirmed(self, table: RoutingTable) -> None:
        if self._computed is None or self._computed[0] is not table:
            return
        _, versions, stamps = self._computed
        stamps.confirmed = self.trace.clock()
        if self.reporter is not None:
            with contextlib.suppress(RuntimeError, NotFound):  # no running loop: tests
                self.reporter.report(versions, stamps)
