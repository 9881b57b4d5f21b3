"""Node registration and heartbeats through the real client and API server."""

from __future__ import annotations

import pytest
from agent_api import running_api

from shoal.agent.node import NodeRegistration, fresh_status, node_capacity
from shoal.api.meta import find_condition
from shoal.api.node import Node, NodeStatus


def test_fresh_status_is_ready_with_capacity_and_where_to_reach_the_agent() -> None:
    previous = NodeStatus(traffic={"default/web": 3})
    status = fresh_status(
        previous, address="10.0.0.5", envoy_admin_port=9901, agent_port=7071, features=["sandbox"]
    )
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None and ready.status == "True"
    assert (status.address, status.envoy_admin_port, status.agent_port) == ("10.0.0.5", 9901, 7071)
    assert status.capacity == status.allocatable == node_capacity()
    assert status.features == ["sandbox"] and status.last_heartbeat_time is not None
    assert status.traffic == {"default/web": 3}, "what other components wrote is kept"


@pytest.mark.asyncio
async def test_register_creates_or_takes_over_and_heartbeats_move_forward() -> None:
    async with running_api() as client:
        registration = NodeRegistration(client, "n1", address="127.0.0.1", envoy_admin_port=9901)
        created = await registration.register()
        assert created.metadata.name == "n1"
        again = await NodeRegistration(
            client, "n1", address="127.0.0.1", envoy_admin_port=9902
        ).register()
        assert again.metadata.uid == created.metadata.uid, "a restarted agent keeps its Node"
        assert again.status.envoy_admin_port == 9902
        beat = await registration.heartbeat()
        assert beat.status.last_heartbeat_time is not None
        assert again.status.last_heartbeat_time is not None
        assert beat.status.last_heartbeat_time >= again.status.last_heartbeat_time
        assert (await client.get(Node, "n1")).status.envoy_admin_port == 9901
