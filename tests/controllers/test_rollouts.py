"""Which nodes must confirm a rollout's routing, and the version they all confirmed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shoal.api.meta import Condition, ObjectMeta
from shoal.api.node import Node
from shoal.controllers.rollouts import confirmed_traffic, routing_nodes

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def node(
    name: str, traffic: dict[str, int], *, ready: bool = True, age: float = 1.0, envoy: bool = True
) -> Node:
    n = Node(kind="Node", metadata=ObjectMeta(name=name, namespace=None))
    n.status.conditions = [Condition(type="Ready", status="True" if ready else "False")]
    n.status.last_heartbeat_time = NOW - timedelta(seconds=age)
    n.status.envoy_admin_port = 9901 if envoy else None
    n.status.traffic = traffic
    return n


def test_the_slowest_routing_node_decides() -> None:
    nodes = [node("a", {"ns/web": 4}), node("b", {"ns/web": 2}), node("c", {})]
    assert confirmed_traffic(nodes[:2], "ns/web", NOW) == 2
    assert confirmed_traffic(nodes, "ns/web", NOW) == 0  # c has not routed it at all


def test_nodes_that_cannot_route_are_not_waited_for() -> None:
    nodes = [
        node("a", {"ns/web": 4}),
        node("down", {}, ready=False),
        node("silent", {}, age=120),
        node("no-envoy", {}, envoy=False),
    ]
    assert [n.metadata.name for n in routing_nodes(nodes, NOW)] == ["a"]
    assert confirmed_traffic(nodes, "ns/web", NOW) == 4
    assert confirmed_traffic([], "ns/web", NOW) is None
