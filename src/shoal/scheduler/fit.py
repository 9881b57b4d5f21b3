"""Node filtering and scoring: `schedule(pod, nodes, pods_on_nodes) -> Scheduled | Unschedulable`.

Pure, as Nomad's and Kubernetes' schedulers are at heart:
- filter: the node is Ready (condition Ready=True; a node without one has not reported yet),
  not `spec.unschedulable`, has room for one more pod, and its allocatable CPU (millicores)
  and memory (bytes) minus what its bound pods request cover this pod's requests;
- score: least allocated (the mean free share of CPU and memory after placing the pod, as
  Kubernetes' NodeResourcesLeastAllocated), ties broken by fewer pods, then by name, so
  the choice is deterministic.
An unschedulable answer says why per node, Kubernetes style: "0/3 nodes are available: 1 node
is not ready, 2 nodes have insufficient cpu."

Called by `shoal.scheduler.binder`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shoal.api.meta import find_condition
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.quantity import parse_bytes, parse_cpu_millis


@dataclass(frozen=True, slots=True)
class Scheduled:
    node: str


@dataclass(frozen=True, slots=True)
class Unschedulable:
    reason: str


def requests_of(pod: Pod) -> tuple[int, int]:
    """(cpu millicores, memory bytes) the pod requests. A resource with a limit and no request
    requests its limit, as in Kubernetes: a sandbox enforces the limit, so the node must have it."""
    resources = pod.spec.resources
    cpu_text = resources.requests.cpu or resources.limits.cpu
    memory_text = resources.requests.memory or resources.limits.memory
    cpu = parse_cpu_millis(cpu_text) if cpu_text else 0
    memory = parse_bytes(memory_text) if memory_text else 0
    return cpu, memory


def node_ready(node: Node) -> bool:
    condition = find_condition(node.status.conditions, "Ready")
    return condition is not None and condition.status == "True"


def _free(node: Node, bound: Sequence[Pod]) -> tuple[int, int, int, int, int]:
    """(free cpu, free memory, allocatable cpu, allocatable memory, free pod slots)."""
    cpu = parse_cpu_millis(node.status.allocatable.cpu)
    memory = parse_bytes(node.status.allocatable.memory)
    used_cpu = used_memory = 0
    for pod in bound:
        pod_cpu, pod_memory = requests_of(pod)
        used_cpu += pod_cpu
        used_memory += pod_memory
    return (
        cpu - used_cpu,
        memory - used_memory,
        cpu,
        memory,
        node.status.allocatable.pods - len(bound),
    )


def _score(free_cpu: int, free_memory: int, cpu: int, memory: int) -> float:
    shares = [free / total for free, total in ((free_cpu, cpu), (free_memory, memory)) if total > 0]
    return sum(shares) / len(shares) if shares else 1.0


def schedule(
    pod: Pod, nodes: Sequence[Node], pods_on_nodes: Mapping[str, Sequence[Pod]]
) -> Scheduled | Unschedulable:
    want_cpu, want_memory = requests_of(pod)
    reasons: Counter[str] = Counter()
    candidates: list[tuple[float, int, str]] = []
    for node in nodes:
        name = node.metadata.name
        bound = pods_on_nodes.get(name, ())
        if not node_ready(node):
            reasons["node is not ready"] += 1
            continue
        if node.spec.unschedulable:
            reasons["node is unschedulable"] += 1
            continue
        free_cpu, free_memory, cpu, memory, slots = _free(node, bound)
        if slots < 1:
            reasons["too many pods"] += 1
            continue
        if want_cpu > free_cpu:
            reasons["insufficient cpu"] += 1
            continue
        if want_memory > free_memory:
            reasons["insufficient memory"] += 1
            continue
        score = _score(free_cpu - want_cpu, free_memory - want_memory, cpu, memory)
        candidates.append((-score, len(bound), name))
    if candidates:
        return Scheduled(min(candidates)[2])
    details = ", ".join(
        f"{count} {'node' if count == 1 else 'nodes'}: {reason}"
        for reason, count in sorted(reasons.items())
    )
    summary = f"0/{len(nodes)} nodes are available"
    return Unschedulable(f"{summary}: {details}." if details else f"{summary}.")
