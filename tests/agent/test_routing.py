"""routing.build_routing: which pods each Service's Envoy cluster lists, and how (serving or
draining), as a pure function of Services, Pods and Node addresses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from shoal.agent.envoy import Destination, Endpoint, Route, UpstreamCluster
from shoal.agent.routing import (
    PodEndpoint,
    ServiceRouting,
    build_routing,
    endpoint_state,
    is_selected,
    may_route,
    node_addresses,
    service_listener,
    target_port,
)
from shoal.api.meta import Condition
from shoal.api.node import Node
from shoal.api.pod import ContainerPort, Pod
from shoal.api.service import Service

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pod(
    name: str,
    *,
    app: str = "web",
    ready: bool = True,
    phase: str = "Running",
    node: str | None = "n1",
    port: int | None = 20001,
    deleting: bool = False,
    namespace: str = "default",
) -> Pod:
    p: Pod = Pod.new(name, namespace, spec={"command": ["serve"], "nodeName": node})
    p.metadata.uid = f"uid-{name}"
    p.metadata.labels = {"app": app, "tier": "x"}
    p.status.phase = phase  # type: ignore[assignment]
    p.status.host_port = port
    p.status.host_ports = {"http": port} if port else {}
    condition = Condition(type="ContainersReady", status="True" if ready else "False")
    p.status.conditions = [condition]
    if deleting:
        p.metadata.deletion_timestamp = T0
    return p


def service(name: str, port: int, app: str = "web", target: int | str | None = None) -> Service:
    spec = {"selector": {"app": app}, "port": port, "targetPort": target}
    created: Service = Service.new(name, spec=spec)
    return created


def test_endpoint_state_follows_readiness_phase_binding_and_deletion() -> None:
    assert endpoint_state(pod("a")) == "serving"
    assert endpoint_state(pod("a", deleting=True)) == "draining"
    assert endpoint_state(pod("a", ready=False)) is None
    assert endpoint_state(pod("a", ready=False, deleting=True)) is None
    assert endpoint_state(pod("a", phase="Pending")) is None
    assert endpoint_state(pod("a", node=None)) is None


def test_a_pod_this_agent_knows_ready_is_routed_before_its_status_says_so() -> None:
    fresh = pod("a", ready=False)
    assert endpoint_state(fresh, locally_ready=True) == "serving"
    table, membership = build_routing([service("web", 8080)], [fresh], {}, locally_ready={"uid-a"})
    assert table.clusters[0].endpoints == (Endpoint("127.0.0.1", 20001),)
    assert set(membership) == {"uid-a"}
    assert build_routing([service("web", 8080)], [fresh], {})[1] == {}


def test_target_port_by_default_number_digits_or_name() -> None:
    p = pod("a", port=20005)
    assert target_port(service("s", 80), p) == 20005
    assert target_port(service("s", 80, target=9000), p) == 9000
    assert target_port(service("s", 80, target="9001"), p) == 9001
    assert target_port(service("s", 80, target="http"), p) == 20005
    assert target_port(service("s", 80, target="metrics"), p) is None


def test_one_cluster_per_service_lists_serving_and_draining_pods() -> None:
    pods = [
        pod("a", port=20002),
        pod("b", port=20001, deleting=True),
        pod("c", port=20003, ready=False),
        pod("other", app="db", port=20004),
    ]
    table, membership = build_routing([service("web", 8080)], pods, {"n1": "10.0.0.1"})
    (cluster,) = table.clusters
    assert cluster.name == "default.web.all"
    assert cluster.endpoints == (
        Endpoint("10.0.0.1", 20001, draining=True),
        Endpoint("10.0.0.1", 20002),
    )
    (listener,) = table.listeners
    assert (listener.name, listener.port) == ("default.web", 8080)
    assert listener.routes == (Route(Destination.single("default.web.all")),)
    assert set(membership) == {"uid-a", "uid-b"}
    assert membership["uid-b"][0].state == "draining"
    assert membership["uid-a"][0].host == "10.0.0.1"


def test_services_see_only_their_namespace_and_a_taken_port_goes_to_the_first() -> None:
    other = Service.new("web", "staging", spec={"selector": {"app": "web"}, "port": 8080})
    pods = [pod("a"), pod("b", namespace="staging", port=20009)]
    table, membership = build_routing([other, service("web", 8080)], pods, {})
    (listener,) = table.listeners
    assert listener.name == "default.web", "default sorts before staging"
    assert set(membership) == {"uid-a"}
    assert table.clusters[0].endpoints == (Endpoint("127.0.0.1", 20001),)


def test_a_pod_in_two_services_has_two_placements() -> None:
    services = [service("web", 8080), service("web-admin", 8090, target=9000)]
    _table, membership = build_routing(services, [pod("a")], {})
    assert [(p.cluster, p.port) for p in membership["uid-a"]] == [
        ("default.web.all", 20001),
        ("default.web-admin.all", 9000),
    ]


def test_the_route_builder_can_be_swapped_per_service() -> None:
    seen: list[tuple[str, list[str]]] = []

    def two_halves(svc: Service, endpoints: Sequence[PodEndpoint]) -> ServiceRouting:
        seen.append((svc.metadata.name, [e.uid for e in endpoints]))
        names = ("default.web.v1", "default.web.v2")
        clusters = tuple(
            UpstreamCluster(n, tuple(e.endpoint() for e in endpoints[i::2]))
            for i, n in enumerate(names)
        )
        placements = {e.uid: (e.placement(names[i % 2]),) for i, e in enumerate(endpoints)}
        route = Route(Destination.split({names[0]: 90, names[1]: 10}))
        return ServiceRouting(service_listener(svc, (route,)), clusters, placements)

    table, membership = build_routing(
        [service("web", 8080)], [pod("a"), pod("b", port=20002)], {}, two_halves
    )
    table.check()
    assert seen == [("web", ["uid-a", "uid-b"])]
    assert [c.name for c in table.clusters] == ["default.web.v1", "default.web.v2"]
    assert membership["uid-b"][0].cluster == "default.web.v2"


def test_is_selected_needs_a_matching_service_and_the_port_in_the_spec() -> None:
    p = pod("a", port=None)  # not started yet: no port numbers in its status
    p.spec.ports = [ContainerPort(name="http")]
    assert is_selected([service("web", 8080)], p)
    assert is_selected([service("web", 8080, target="http")], p)
    assert is_selected([service("web", 8080, target=9000)], p)
    assert not is_selected([service("db", 8080, app="db")], p)
    assert not is_selected([service("web", 8080, target="metrics")], p)
    p.spec.ports = []
    assert not is_selected([service("web", 8080)], p)


def test_node_addresses() -> None:
    node = Node.new("n1", None)
    node.status.address = "10.1.1.1"
    assert node_addresses([node]) == {"n1": "10.1.1.1"}


def test_only_a_pod_a_service_selects_before_or_after_its_change_may_route() -> None:
    web = [service("web", 18080)]
    worker, relabelled = pod("w", app="worker"), pod("w", app="web")
    assert not may_route(web, (None, worker))  # a crash-looping worker: no recompute
    assert not may_route(web, (worker, worker))
    assert not may_route([], (relabelled, relabelled))
    assert may_route(web, (None, relabelled))  # it joins
    assert may_route(web, (relabelled, worker))  # it leaves: its endpoint must go
    assert may_route(web, (worker, relabelled))
