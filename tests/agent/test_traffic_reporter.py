"""TrafficReporter against an in-memory API with compare-and-set status writes: one request per
report while nobody else wrote the Node, and a heartbeat written in between is kept."""

from __future__ import annotations

from datetime import UTC, datetime

from shoal.agent.rollout_routing import TrafficReporter
from shoal.api.errors import Conflict
from shoal.api.meta import ObjectMeta
from shoal.api.node import Node


class NodeApi:
    """The Node resource with resourceVersion compare-and-set, counting requests."""

    def __init__(self) -> None:
        self.node = Node(kind="Node", metadata=ObjectMeta(name="n1", namespace=None))
        self.node.metadata.resource_version = "1"
        self.requests: list[str] = []

    async def get(self, _cls: type[Node], _name: str) -> Node:
        self.requests.append("get")
        return self.node.model_copy(deep=True)

    async def update_status(self, node: Node) -> Node:
        self.requests.append("update")
        if node.metadata.resource_version != self.node.metadata.resource_version:
            raise Conflict("stale")
        self.bump(node)
        return self.node.model_copy(deep=True)

    def bump(self, node: Node) -> None:
        version = int(self.node.metadata.resource_version or 0) + 1
        self.node = node.model_copy(deep=True)
        self.node.metadata.resource_version = str(version)


async def test_reports_write_once_and_keep_a_heartbeat_written_in_between() -> None:
    api = NodeApi()
    reporter = TrafficReporter(api, "n1")  # type: ignore[arg-type]
    reporter.report({"ns/web": 1})
    await reporter.wait_idle()
    assert api.node.status.traffic == {"ns/web": 1} and api.requests == ["get", "update"]

    api.requests.clear()
    reporter.report({"ns/web": 2})
    await reporter.wait_idle()
    assert api.node.status.traffic == {"ns/web": 2} and api.requests == ["update"]

    beat = api.node.model_copy(deep=True)  # the heartbeat writes the same status
    beat.status.last_heartbeat_time = datetime(2026, 1, 1, tzinfo=UTC)
    api.bump(beat)
    api.requests.clear()
    reporter.report({"ns/web": 3})
    await reporter.wait_idle()
    assert api.requests == ["update", "get", "update"]
    assert api.node.status.traffic == {"ns/web": 3}
    assert api.node.status.last_heartbeat_time == datetime(2026, 1, 1, tzinfo=UTC)
