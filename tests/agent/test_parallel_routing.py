"""parallel_routing (through RolloutRouting.build): differ Pods never get live traffic, get
their own cluster, and become the Service's mirror target only while a ParallelRun compares."""

from __future__ import annotations

from typing import Any

from shoal.agent.envoy import Mirror
from shoal.agent.rollout_routing import RolloutRouting
from shoal.agent.routing import ServiceRouting, pod_endpoints
from shoal.api.deployment import Deployment
from shoal.api.meta import Condition
from shoal.api.pod import Pod
from shoal.api.rollout import RolloutStatus, TrafficRouting
from shoal.api.service import Service

PARALLEL = {"type": "ParallelRun", "parallelRun": {"mirrorPercent": 25}}
SERVICE = Service.new("web", spec={"selector": {"app": "web"}, "port": 8080})
DIFFER_CLUSTER = "default.web.differ"


def deployment(
    strategy: dict[str, Any], traffic: dict[str, Any] | None, **status: Any
) -> Deployment:
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
        d.status.rollout = RolloutStatus(traffic=TrafficRouting.model_validate(traffic), **status)
    return d


def pod(name: str, port: int, **labels: str) -> Pod:
    p: Pod = Pod.new(name, spec={"command": ["x"], "nodeName": "n1"})
    p.metadata.uid = f"uid-{name}"
    p.metadata.labels = {"app": "web", **labels}
    p.status.phase = "Running"
    p.status.host_port = port
    p.status.conditions = [Condition(type="ContainersReady", status="True")]
    return p


PODS = [
    pod("a", 20001, **{"pod-template-hash": "old"}),
    pod("c", 20003, **{"pod-template-hash": "new"}),
    pod("differ", 20009, **{"shoal.dev/differ": "web"}),
]
COMPARING = {"version": 2, "stable": "old", "canary": "new"}


def build(d: Deployment | None) -> ServiceRouting:
    routing = RolloutRouting(lambda: [d] if d is not None else [])
    return routing.build(SERVICE, pod_endpoints(SERVICE, PODS, {}))


def live_ports(routing: ServiceRouting) -> set[int]:
    return {e.port for c in routing.clusters if c.name != DIFFER_CLUSTER for e in c.endpoints}


def test_while_comparing_live_traffic_goes_to_the_primary_and_the_differ_gets_copies() -> None:
    routing = build(deployment(PARALLEL, COMPARING))
    assert routing.listener.mirror == Mirror(DIFFER_CLUSTER, 25.0, ("GET", "HEAD"))
    destinations = [r.destination for r in routing.listener.routes]
    assert [d.clusters() for d in destinations] == [("default.web.old",)]
    differ = next(c for c in routing.clusters if c.name == DIFFER_CLUSTER)
    assert [e.port for e in differ.endpoints] == [20009]
    assert routing.placements["uid-differ"][0].cluster == DIFFER_CLUSTER
    assert 20009 not in live_ports(routing)


def test_no_mirror_before_the_candidate_is_routed_after_an_abort_or_for_other_strategies() -> None:
    cases = [
        deployment(PARALLEL, {"version": 1, "stable": "old"}),
        deployment(PARALLEL, COMPARING, aborted=True),
        deployment({"type": "BlueGreen"}, COMPARING),
        deployment(PARALLEL, None),
        None,
    ]
    for d in cases:
        routing = build(d)
        assert routing.listener.mirror is None
        assert 20009 not in live_ports(routing)  # a differ never serves live requests
        assert routing.placements["uid-differ"][0].cluster == DIFFER_CLUSTER


def test_methods_listed_by_the_user_are_mirrored() -> None:
    strategy = {"type": "ParallelRun", "parallelRun": {"methods": ["GET", "POST"]}}
    mirror = build(deployment(strategy, COMPARING)).listener.mirror
    assert mirror is not None and mirror.methods == ("GET", "POST")


def test_a_comparison_pod_a_service_happens_to_select_gets_no_traffic_at_all() -> None:
    compare = pod("cmp", 20010, **{"shoal.dev/compare": "web", "pod-template-hash": "old"})
    routing = RolloutRouting(lambda: [deployment(PARALLEL, COMPARING)])
    built = routing.build(SERVICE, pod_endpoints(SERVICE, [*PODS, compare], {}))
    assert {e.port for c in built.clusters for e in c.endpoints} == {20001, 20003, 20009}
    assert "uid-cmp" not in built.placements
