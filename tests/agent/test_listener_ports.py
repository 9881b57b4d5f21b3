"""Taken Service ports are left out of the table instead of failing the node's whole update."""

from __future__ import annotations

import socket

from shoal.agent.envoy import Destination, Route, RoutingTable, ServiceListener, UpstreamCluster
from shoal.agent.listener_ports import can_listen, leave_out_taken_ports


def listener(name: str, port: int) -> ServiceListener:
    return ServiceListener(name, port, (Route(Destination.single("c")),))


TABLE = RoutingTable(
    listeners=(listener("default.web", 8080), listener("default.api", 8081)),
    clusters=(UpstreamCluster("c"),),
)


def test_new_listeners_on_taken_ports_are_left_out_and_reported() -> None:
    table, taken = leave_out_taken_ports(TABLE, set(), probe=lambda _a, port: port != 8081)
    assert [lst.name for lst in table.listeners] == ["default.web"]
    assert taken == {"default.api": 8081}
    assert table.clusters == TABLE.clusters


def test_listeners_envoy_already_holds_are_not_probed() -> None:
    probed: list[int] = []

    def probe(_address: str, port: int) -> bool:
        probed.append(port)
        return False

    table, taken = leave_out_taken_ports(TABLE, {("127.0.0.1", 8080), ("127.0.0.1", 8081)}, probe)
    assert table == TABLE
    assert taken == {}
    assert probed == []


def test_can_listen_sees_a_listening_socket() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert not can_listen("127.0.0.1", port)
    assert can_listen("127.0.0.1", port)
