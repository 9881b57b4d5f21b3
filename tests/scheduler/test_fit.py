"""The pure scheduler: filters (ready, schedulable, room, cpu, memory) and least-allocated."""

from __future__ import annotations

from typing import Any

from shoal.api.meta import Condition
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.scheduler.fit import Scheduled, Unschedulable, requests_of, schedule


def node(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    *,
    ready: str | None = "True",
    unschedulable: bool = False,
    pods: int = 110,
) -> Node:
    n: Node = Node.new(name, namespace=None)
    n.spec.unschedulable = unschedulable
    n.status.allocatable.cpu = cpu
    n.status.allocatable.memory = memory
    n.status.allocatable.pods = pods
    if ready is not None:
        n.status.conditions = [Condition(type="Ready", status=ready)]  # type: ignore[arg-type]
    return n


def pod(
    name: str = "p", cpu: str | None = None, memory: str | None = None, on: str | None = None
) -> Pod:
    requests: dict[str, Any] = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    return Pod.from_json(
        {
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"command": ["x"], "nodeName": on, "resources": {"requests": requests}},
        }
    )


def test_requests_parse_quantities() -> None:
    assert requests_of(pod(cpu="500m", memory="128Mi")) == (500, 128 * 2**20)
    assert requests_of(pod()) == (0, 0)


def test_picks_least_allocated_node() -> None:
    busy, idle = node("busy"), node("idle")
    bound = {"busy": [pod("x", cpu="3", on="busy")]}
    assert schedule(pod(cpu="500m"), [busy, idle], bound) == Scheduled("idle")


def test_skips_not_ready_unschedulable_and_full_nodes() -> None:
    nodes = [
        node("down", ready="False"),
        node("new", ready=None),
        node("cordoned", unschedulable=True),
        node("small", cpu="250m"),
        node("full", pods=1),
    ]
    bound = {"full": [pod("x", on="full")]}
    result = schedule(pod(cpu="500m"), nodes, bound)
    assert isinstance(result, Unschedulable)
    assert result.reason.startswith("0/5 nodes are available: ")
    for text in (
        "2 nodes: node is not ready",
        "1 node: node is unschedulable",
        "1 node: insufficient cpu",
        "1 node: too many pods",
    ):
        assert text in result.reason


def test_memory_counts_what_bound_pods_request() -> None:
    n = node("n", memory="1Gi")
    bound = {"n": [pod("x", memory="768Mi", on="n")]}
    assert schedule(pod(memory="256Mi"), [n], bound) == Scheduled("n")
    result = schedule(pod(memory="257Mi"), [n], bound)
    assert isinstance(result, Unschedulable) and "insufficient memory" in result.reason


def test_no_nodes() -> None:
    assert schedule(pod(), [], {}) == Unschedulable("0/0 nodes are available.")


def test_ties_are_deterministic() -> None:
    assert schedule(pod(), [node("b"), node("a")], {}) == Scheduled("a")


def test_a_limit_without_a_request_counts_as_the_request() -> None:
    limited = Pod.from_json(
        {
            "kind": "Pod",
            "metadata": {"name": "sandboxed"},
            "spec": {
                "command": ["x"],
                "resources": {"limits": {"cpu": "3", "memory": "1Gi"}, "requests": {"cpu": "1"}},
            },
        }
    )
    assert requests_of(limited) == (1000, 2**30)
    decision = schedule(limited, [node("small", cpu="4", memory="512Mi")], {})
    assert isinstance(decision, Unschedulable)
    assert "insufficient memory" in decision.reason
