"""`describe` of a Service (its endpoints, ready or not) and a Node (status and capacity)."""

from __future__ import annotations

from datetime import timedelta

from cli_samples import NOW

from shoal.api.node import Node
from shoal.api.service import Service
from shoal.cli.describe_infra import describe_node, describe_service
from shoal.cli.description import Description


def test_service_lists_each_endpoint_and_says_which_are_not_ready() -> None:
    service = Service.from_json(
        {
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "port": 80, "targetPort": "http"},
            "status": {
                "endpoints": [
                    {"ip": "127.0.0.1", "port": 3000, "pod": "web-a", "ready": True},
                    {"ip": "127.0.0.1", "port": 3001, "pod": "web-b", "ready": False},
                ]
            },
        }
    )
    out = Description()
    describe_service(out, service)
    assert out.lines[-1] == (
        "Endpoints:              127.0.0.1:3000 (web-a), 127.0.0.1:3001 (web-b, not ready)"
    )


def test_node_shows_capacity_and_allocatable_apart() -> None:
    heartbeat = (NOW - timedelta(seconds=3)).isoformat()
    node = Node.from_json(
        {
            "kind": "Node",
            "metadata": {"name": "n1"},
            "spec": {"unschedulable": True},
            "status": {
                "address": "127.0.0.1",
                "lastHeartbeatTime": heartbeat,
                "capacity": {"cpu": "2", "memory": "1Gi", "pods": 110},
                "allocatable": {"cpu": "2", "memory": "1Gi", "pods": 100},
            },
        }
    )
    out = Description()
    describe_node(out, node, NOW)
    text = out.text()
    assert "Unschedulable:          true" in text
    assert f"Last Heartbeat:         {heartbeat} (3s ago)" in text
    # pods differs (110 / 100), so a Capacity block showing the allocatable figures fails here
    assert out.lines[-8:] == [
        "Capacity:",
        "  cpu:                  2",
        "  memory:               1Gi",
        "  pods:                 110",
        "Allocatable:",
        "  cpu:                  2",
        "  memory:               1Gi",
        "  pods:                 100",
    ]
