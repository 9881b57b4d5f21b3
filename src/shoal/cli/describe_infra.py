"""`shoal describe` of what runs and routes the workloads: a Node (status, agent, Envoy,
capacity) and a Service (selector, ports, the endpoints Envoy routes to).

Called by `describe.render_description`; pure.
"""

from __future__ import annotations

from datetime import datetime

from shoal.api.node import Node
from shoal.api.service import Service
from shoal.cli.description import Description, conditions, when
from shoal.cli.durations import format_seconds
from shoal.cli.printers import node_status


def describe_service(out: Description, service: Service) -> None:
    out.mapping("Selector", service.spec.selector)
    out.field("Port", service.spec.port)
    out.field("TargetPort", service.spec.target_port)
    out.field("Timeout", format_seconds(service.spec.timeout_seconds))
    endpoints = [
        f"{e.ip}:{e.port} ({e.pod}{'' if e.ready else ', not ready'})"
        for e in service.status.endpoints
    ]
    out.field("Endpoints", ", ".join(endpoints) or None)


def describe_node(out: Description, node: Node, now: datetime) -> None:
    status = node.status
    out.field("Status", node_status(node))
    out.field("Address", status.address)
    out.field("Unschedulable", str(node.spec.unschedulable).lower())
    out.field("Agent Version", status.agent_version)
    out.field("Last Heartbeat", when(status.last_heartbeat_time, now))
    out.field("Envoy Admin Port", status.envoy_admin_port)
    out.field("Features", ", ".join(status.features) or None)
    for label, resources in (("Capacity", status.capacity), ("Allocatable", status.allocatable)):
        out.heading(label)
        out.field("cpu", resources.cpu, 2)
        out.field("memory", resources.memory, 2)
        out.field("pods", resources.pods, 2)
    conditions(out, status.conditions)
