"""What Envoy should route, computed from Services, Pods and Nodes: a pure function.

Called by the agent runner (through the data plane's sync loop) whenever one of those changes.

A pod's endpoint in a Service's cluster is, by the pod's state:

    serving   ContainersReady=True and Running (or, on this node, its
              readiness just passed), not being deleted            -> routed
    draining  being deleted, process still running, was serving   -> no new requests, but
              listed so that its in-flight requests stay visible until they finish
    absent    anything else (not ready, stopped, not bound, gone) -> not listed

`Membership` records, per pod uid, which clusters list it and how; the pod worker waits on
Envoy's confirmation of exactly this before it calls a pod Ready or stops its process.

Each Service is turned into Envoy resources by a `ServiceRouteBuilder`: `single_cluster` (one
cluster over every selected pod) unless the caller passes another one, e.g. a strategy that
splits a Service into per-revision clusters with weights. A builder gets the Service and the
endpoints of the pods it selects, and returns its listener, its clusters and the placements.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from shoal.agent.envoy import (
    Destination,
    Endpoint,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
    cluster_name,
    listener_name,
)
from shoal.api.meta import find_condition
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.service import Service

EndpointState = Literal["serving", "draining"]
SERVICE_CLUSTER = "all"  # revision slot of a Service's single cluster


@dataclass(frozen=True, slots=True)
class Placement:
    """One pod's endpoint in one cluster."""

    cluster: str
    host: str
    port: int
    state: EndpointState


Membership = dict[str, tuple[Placement, ...]]


@dataclass(frozen=True, slots=True)
class PodEndpoint:
    """A pod a Service selects and may route to: where, and in which state."""

    pod: Pod
    uid: str
    host: str
    port: int
    state: EndpointState

    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port, draining=self.state == "draining")

    def placement(self, cluster: str) -> Placement:
        return Placement(cluster, self.host, self.port, self.state)


@dataclass(frozen=True, slots=True)
class ServiceRouting:
    """What one Service contributes to the table."""

    listener: ServiceListener
    clusters: tuple[UpstreamCluster, ...]
    placements: Mapping[str, tuple[Placement, ...]]  # pod uid -> its endpoints
    extra_listeners: tuple[ServiceListener, ...] = ()  # e.g. blue-green's preview port


ServiceRouteBuilder = Callable[[Service, Sequence[PodEndpoint]], ServiceRouting]


def endpoint_state(pod: Pod, locally_ready: bool = False) -> EndpointState | None:
    """Whether (and how) a pod belongs in its Services' clusters. `locally_ready`: this node's
    agent knows its readiness passed, before the status saying so is written."""
    ready = find_condition(pod.status.conditions, "ContainersReady")
    by_status = ready is not None and ready.status == "True" and pod.status.phase == "Running"
    if not (locally_ready or by_status) or pod.spec.node_name is None:
        return None
    return "draining" if pod.metadata.deletion_timestamp is not None else "serving"


def selects(service: Service, pod: Pod) -> bool:
    """A Service selects the pods of its namespace whose labels contain its selector."""
    if service.metadata.namespace != pod.metadata.namespace:
        return False
    labels = pod.metadata.labels
    return all(labels.get(key) == value for key, value in service.spec.selector.items())


def may_route(services: Iterable[Service], versions: Iterable[Pod | None]) -> bool:
    """Whether a pod whose version changed from one to the other of `versions` can change the
    routing table: a Service selects either version. A pod no Service selects (a crash-looping
    worker, a batch job) changes nothing that routes, however often it is written."""
    pods = [pod for pod in versions if pod is not None]
    return any(selects(service, pod) for service in services for pod in pods)


def target_port(service: Service, pod: Pod) -> int | None:
    """The host port a Service sends this pod's traffic to (None: the pod has no such port)."""
    target = service.spec.target_port
    if target is None:
        return pod.status.host_port
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    return pod.status.host_ports.get(target)


def node_addresses(nodes: Iterable[Node]) -> dict[str, str]:
    return {node.metadata.name: node.status.address for node in nodes}


def pod_endpoints(
    service: Service,
    pods: Iterable[Pod],
    addresses: Mapping[str, str],
    locally_ready: Collection[str] = (),
) -> list[PodEndpoint]:
    """The routable pods of a Service, in a stable order (by host, port)."""
    found: list[PodEndpoint] = []
    for pod in pods:
        state = endpoint_state(pod, pod.metadata.uid in locally_ready)
        if state is None or not selects(service, pod):
            continue
        port = target_port(service, pod)
        if port is None:
            continue
        host = addresses.get(pod.spec.node_name or "", "127.0.0.1")
        found.append(PodEndpoint(pod, pod.metadata.uid or pod.metadata.name, host, port, state))
    found.sort(key=lambda e: (e.host, e.port, e.uid))
    return found


def service_listener(service: Service, routes: tuple[Route, ...]) -> ServiceListener:
    namespace = service.metadata.namespace or "default"
    return ServiceListener(
        name=listener_name(namespace, service.metadata.name),
        port=service.spec.port,
        routes=routes,
        timeout_s=service.spec.timeout_seconds,
    )


def single_cluster(service: Service, endpoints: Sequence[PodEndpoint]) -> ServiceRouting:
    """The default builder: one cluster over every routable pod, one catch-all route."""
    namespace = service.metadata.namespace or "default"
    cluster = cluster_name(namespace, service.metadata.name, SERVICE_CLUSTER)
    return ServiceRouting(
        listener=service_listener(service, (Route(Destination.single(cluster)),)),
        clusters=(UpstreamCluster(cluster, tuple(e.endpoint() for e in endpoints)),),
        placements={e.uid: (e.placement(cluster),) for e in endpoints},
    )


def build_routing(
    services: Iterable[Service],
    pods: Iterable[Pod],
    addresses: Mapping[str, str],
    builder: ServiceRouteBuilder = single_cluster,
    locally_ready: Collection[str] = (),
) -> tuple[RoutingTable, Membership]:
    """The routing table for every Service, and where each pod appears in it.
    `locally_ready`: uids of this node's pods whose readiness passed (see `endpoint_state`)."""
    placements: dict[str, list[Placement]] = {}
    listeners: list[ServiceListener] = []
    clusters: list[UpstreamCluster] = []
    pod_list = list(pods)
    ports_taken: set[int] = set()
    for service in sorted(services, key=lambda s: (s.metadata.namespace or "", s.metadata.name)):
        if service.spec.port in ports_taken:
            continue  # a second Service on one port: the first (by namespace, name) keeps it
        ports_taken.add(service.spec.port)
        endpoints = pod_endpoints(service, pod_list, addresses, locally_ready)
        routing = builder(service, endpoints)
        listeners.append(routing.listener)
        for extra in routing.extra_listeners:
            if extra.port not in ports_taken:
                ports_taken.add(extra.port)
                listeners.append(extra)
        clusters.extend(routing.clusters)
        for uid, items in routing.placements.items():
            placements.setdefault(uid, []).extend(items)
    table = RoutingTable(listeners=tuple(listeners), clusters=tuple(clusters))
    return table, {uid: tuple(items) for uid, items in placements.items()}


def has_target(service: Service, pod: Pod) -> bool:
    """Whether the pod's spec declares the port the Service sends traffic to (its status may
    not carry the allocated numbers yet)."""
    target = service.spec.target_port
    if target is None:
        return bool(pod.spec.ports)
    if isinstance(target, int) or target.isdigit():
        return True
    return any(port.name == target for port in pod.spec.ports)


def is_selected(services: Iterable[Service], pod: Pod) -> bool:
    """Whether any Service routes to this pod (if none, Ready needs no Envoy confirmation)."""
    return any(selects(service, pod) and has_target(service, pod) for service in services)
