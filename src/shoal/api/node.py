"""Node: a machine running `shoal agent` (the server embeds one). Cluster-scoped.

The agent registers it with its capacity and heartbeats `status.lastHeartbeatTime`; the node
lifecycle controller marks it NotReady when heartbeats stop.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from shoal.api.base import ApiModel
from shoal.api.meta import Condition, Resource


class NodeSpec(ApiModel):
    unschedulable: bool = False


class NodeResources(ApiModel):
    cpu: str = "0"
    memory: str = "0"
    pods: int = 110


class NodeStatus(ApiModel):
    capacity: NodeResources = Field(default_factory=NodeResources)
    allocatable: NodeResources = Field(default_factory=NodeResources)
    conditions: list[Condition] = Field(default_factory=list)
    address: str = "127.0.0.1"
    envoy_admin_port: int | None = None
    agent_port: int | None = None
    agent_version: str | None = None
    last_heartbeat_time: datetime | None = None
    features: list[str] = Field(default_factory=list)
    # Rollout traffic versions this node's Envoy has confirmed, by "<namespace>/<deployment>"
    # (see shoal.api.rollout.TrafficRouting); the rollout waits for every Ready node.
    traffic: dict[str, int] = Field(default_factory=dict)
    # Times the agent's supervisor restarted this node's Envoy after it died (kept across
    # agent restarts; each one also an `EnvoyRestarted` Event on the Node).
    envoy_restarts: int = 0


class Node(Resource):
    KIND: ClassVar[str] = "Node"
    PLURAL: ClassVar[str] = "nodes"
    NAMESPACED: ClassVar[bool] = False
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("no",)

    kind: str = "Node"
    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus = Field(default_factory=NodeStatus)
