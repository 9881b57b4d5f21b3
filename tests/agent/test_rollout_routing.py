"""rollout_routing: per-revision clusters and routes of BlueGreen/Canary Services from the
rollout state (pure), and the report of confirmed traffic versions."""

from __future__ import annotations

from typing import Any

from shoal.agent.envoy import (
    CANARY_OVERRIDE_HEADER,
    ClusterWeight,
    HeaderMatch,
    MemoryEnvoySink,
    RoutingTable,
)
from shoal.agent.envoy.cohort import COHORT_HEADER
from shoal.agent.rollout_routing import (
    RolloutRouting,
    deployment_of,
    service_routes,
    traffic_versions,
)
from shoal.agent.routing import build_routing, pod_endpoints
from shoal.api.deployment import Deployment
from shoal.api.meta import Condition
from shoal.api.pod import Pod
from shoal.api.rollout import RolloutStatus, TrafficRouting
from shoal.api.service import Service


def deployment(strategy: dict[str, Any], traffic: dict[str, Any] | None = None) -> Deployment:
    d = Deployment.from_json(
        {
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"command": ["x"]}},
                "strategy": strategy,
            },
        }
    )
    if traffic is not None:
        d.status.rollout = RolloutStatus(traffic=TrafficRouting.model_validate(traffic))
    return d


def pod(name: str, revision: str, port: int) -> Pod:
    p: Pod = Pod.new(name, spec={"command": ["x"], "nodeName": "n1"})
    p.metadata.uid = f"uid-{name}"
    p.metadata.labels = {"app": "web", "pod-template-hash": revision}
    p.status.phase = "Running"
    p.status.host_port = port
    p.status.conditions = [Condition(type="ContainersReady", status="True")]
    return p


SERVICE = Service.new("web", spec={"selector": {"app": "web"}, "port": 8080})
PODS = [pod("a", "old", 20001), pod("b", "old", 20002), pod("c", "new", 20003)]
CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 20}]}}


def routes_of(d: Deployment) -> Any:
    return service_routes(SERVICE, d, pod_endpoints(SERVICE, PODS, {}))


def test_canary_routes_overrides_header_routes_then_weights() -> None:
    d = deployment(
        CANARY,
        {
            "version": 3,
            "stable": "old",
            "canary": "new",
            "weight": 20,
            "headerRoutes": [{"header": "x-user-group", "exact": "beta"}],
        },
    )
    routing = routes_of(d)
    assert [c.name for c in routing.clusters] == ["default.web.new", "default.web.old"]
    assert [len(c.endpoints) for c in routing.clusters] == [1, 2]
    assert routing.placements["uid-c"][0].cluster == "default.web.new"
    routes = routing.listener.routes
    assert routes[0].headers == (HeaderMatch(CANARY_OVERRIDE_HEADER, "never"),)
    assert routes[0].destination.clusters() == ("default.web.old",)
    assert routes[1].headers == (HeaderMatch(CANARY_OVERRIDE_HEADER, "always"),)
    assert routes[1].destination.clusters() == ("default.web.new",)
    assert routes[2].headers == (HeaderMatch("x-user-group", "beta"),)
    assert routes[-1].destination.weights == (
        ClusterWeight("default.web.old", 80),
        ClusterWeight("default.web.new", 20),
    )
    assert routing.listener.cohort_source is None
    assert routing.extra_listeners == ()


def test_sticky_cohorts_route_by_bucket_range() -> None:
    sticky = {"type": "Canary", "canary": {"stickiness": {"header": "x-user-id"}}}
    d = deployment(sticky, {"version": 1, "stable": "old", "canary": "new", "weight": 30})
    routing = routes_of(d)
    assert routing.listener.cohort_source == ("header", "x-user-id")
    ranges = [(r.headers, r.destination.clusters()) for r in routing.listener.routes[2:4]]
    assert ranges == [
        ((HeaderMatch(COHORT_HEADER, int_range=(1, 31)),), ("default.web.new",)),
        ((HeaderMatch(COHORT_HEADER, int_range=(31, 101)),), ("default.web.old",)),
    ]
    for weight in (0, 100):  # no cohort routes needed: the weighted route is exact
        d = deployment(sticky, {"version": 1, "stable": "old", "canary": "new", "weight": weight})
        headers = [h.name for r in routes_of(d).listener.routes for h in r.headers]
        assert COHORT_HEADER not in headers


def test_without_canary_everything_goes_to_stable() -> None:
    routing = routes_of(deployment(CANARY, {"version": 1, "stable": "old"}))
    assert {c for r in routing.listener.routes for c in r.destination.clusters()} == {
        "default.web.old"
    }
    # the new pods still get their own (unrouted) cluster, so they can become Ready
    assert "default.web.new" in [c.name for c in routing.clusters]


def test_blue_green_active_port_and_preview_listener() -> None:
    blue = {"type": "BlueGreen", "blueGreen": {"previewPort": 9081}}
    routing = routes_of(deployment(blue, {"version": 2, "stable": "old", "canary": "new"}))
    assert [r.destination.clusters() for r in routing.listener.routes] == [("default.web.old",)]
    (preview,) = routing.extra_listeners
    assert (preview.name, preview.port) == ("default.web.preview", 9081)
    assert preview.routes[0].destination.clusters() == ("default.web.new",)
    idle = routes_of(deployment(blue, {"version": 3, "stable": "new"}))
    assert idle.extra_listeners[0].routes[0].destination.clusters() == ("default.web.new",)


def test_before_any_rollout_state_the_single_cluster_serves() -> None:
    routing = routes_of(deployment(CANARY))
    assert [c.name for c in routing.clusters] == ["default.web.all"]


def test_deployment_of_matches_by_selector_and_strategy() -> None:
    rolling = deployment({"type": "RollingUpdate"})
    canary = deployment(CANARY)
    assert deployment_of(SERVICE, [rolling]) is None
    assert deployment_of(SERVICE, [rolling, canary]) is canary
    other = Service.new("x", spec={"selector": {"app": "other"}, "port": 1})
    assert deployment_of(other, [canary]) is None


def test_preview_port_joins_the_table_and_versions_are_tracked() -> None:
    blue = deployment(
        {"type": "BlueGreen", "blueGreen": {"previewPort": 9081}},
        {"version": 7, "stable": "old", "canary": "new"},
    )
    router = RolloutRouting(lambda: [blue])
    table, membership = build_routing([SERVICE], PODS, {}, router.build)
    assert sorted(listener.port for listener in table.listeners) == [8080, 9081]
    table.check()
    assert membership["uid-c"][0].cluster == "default.web.new"
    assert traffic_versions([blue, deployment(CANARY)]) == {"default/web": 7}


async def test_only_a_confirmed_table_reports_its_versions() -> None:
    blue = deployment({"type": "BlueGreen"}, {"version": 4, "stable": "old"})
    reports: list[dict[str, int]] = []

    class Reporter:
        def report(self, versions: dict[str, int], _stamps: object = None) -> None:
            reports.append(versions)

    router = RolloutRouting(lambda: [blue], Reporter())  # type: ignore[arg-type]
    source = router.tracking(lambda: build_routing([SERVICE], PODS, {}, router.build))
    sink = router.confirming(MemoryEnvoySink())
    table, _ = source()
    await sink.apply(RoutingTable())  # some other table: nothing to report
    assert reports == []
    await sink.apply(table)
    assert reports == [{"default/web": 4}]
