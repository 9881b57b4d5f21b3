"""Registering this machine as a Node and heart-beating it.

Called by the agent runner: `register` once at start (create, or take over the Node of the same
name after a restart), then `heartbeat` every few seconds. Capacity comes from psutil; the
scheduler fits pods' resource requests against `allocatable`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import psutil

from shoal import __version__
from shoal.api.errors import ApiError, Conflict, NotFound
from shoal.api.meta import Condition, ObjectMeta, set_condition
from shoal.api.node import Node, NodeResources, NodeStatus
from shoal.client import AsyncClient

log = logging.getLogger(__name__)


def node_capacity() -> NodeResources:
    memory_kib = psutil.virtual_memory().total // 1024
    return NodeResources(cpu=str(psutil.cpu_count() or 1), memory=f"{memory_kib}Ki", pods=500)


def fresh_status(
    previous: NodeStatus, *, address: str, envoy_admin_port: int, agent_port: int | None,
    features: list[str],
) -> NodeStatus:  # fmt: skip
    """The status an agent reports: capacity, Ready, heartbeat time, where to reach it."""
    now = datetime.now(UTC)
    capacity = node_capacity()
    ready = Condition(type="Ready", status="True", reason="AgentReady", message="agent running")
    return previous.model_copy(
        update={
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": set_condition(previous.conditions, ready, now),
            "address": address,
            "envoy_admin_port": envoy_admin_port,
            "agent_port": agent_port,
            "agent_version": __version__,
            "last_heartbeat_time": now,
            "features": features,
        }
    )


class NodeRegistration:
    def __init__(
        self, client: AsyncClient, name: str, *, address: str, envoy_admin_port: int,
        agent_port: int | None = None, features: list[str] | None = None,
    ) -> None:  # fmt: skip
        self.client = client
        self.name = name
        self.address = address
        self.envoy_admin_port = envoy_admin_port
        self.agent_port = agent_port
        self.features = features or []

    def _status(self, previous: NodeStatus) -> NodeStatus:
        return fresh_status(
            previous, address=self.address, envoy_admin_port=self.envoy_admin_port,
            agent_port=self.agent_port, features=self.features,
        )  # fmt: skip

    async def register(self) -> Node:
        try:
            node = await self.client.get(Node, self.name)
        except NotFound:
            node = Node(kind="Node", metadata=ObjectMeta(name=self.name, namespace=None))
            node = node.model_copy(update={"status": self._status(node.status)})
            try:
                return await self.client.create(node)
            except ApiError as error:
                if error.reason != "AlreadyExists":
                    raise
                node = await self.client.get(Node, self.name)
        return await self.heartbeat(node)

    async def heartbeat(self, node: Node | None = None) -> Node:
        """Write a fresh status; re-read and retry on conflict."""
        for _ in range(5):
            if node is None:
                node = await self.client.get(Node, self.name)
            try:
                return await self.client.update_status(
                    node.model_copy(update={"status": self._status(node.status)})
                )
            except Conflict:
                node = None
        raise Conflict(f"node {self.name}: heartbeat kept conflicting")
