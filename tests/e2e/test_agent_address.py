"""`shoal agent --address`: a node on another address than 127.0.0.1 (127.0.0.2 here, still
loopback, so the test stays on this machine). Its agent API and its Services' Envoy listeners
bind that address and only it, Node.status.address advertises it, and the API server reaches
the agent there (the log route is proxied to it); the node's own pods are still reached on
loopback, where the test app listens."""

from __future__ import annotations

import socket

import httpx
import pytest
from agent_harness import (
    ServerFactory,
    ShoalAgent,
    app_deployment,
    free_port,
    pods_of,
    service,
    wait_for,
    wait_rollout,
)

from shoal.api.node import Node

pytestmark = pytest.mark.e2e
NODE_ADDRESS = "127.0.0.2"


def refused(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) != 0


def test_an_agent_binds_and_advertises_its_address(shoal_server_factory: ServerFactory) -> None:
    server = shoal_server_factory(agent=False)
    agent = ShoalAgent(server, "n2", address=NODE_ADDRESS)
    agent.start()
    node = server.client.get(Node, "n2")
    assert node.status.address == NODE_ADDRESS
    agent_port = node.status.agent_port
    assert agent_port is not None
    assert not refused(NODE_ADDRESS, agent_port)
    assert refused("127.0.0.1", agent_port), "the agent API must bind the node address only"

    port = free_port()
    server.client.apply_all([app_deployment("web", replicas=1), service("web", port)])
    wait_rollout(server.client, "web")
    [pod] = pods_of(server.client, "web")
    assert pod.spec.node_name == "n2" and pod.status.host_ip == NODE_ADDRESS

    answer = wait_for(
        "the Service on the node address",
        lambda: httpx.get(f"http://{NODE_ADDRESS}:{port}/version", timeout=5),
    )
    assert answer.status_code == 200 and answer.headers["x-version"] == "v1"
    assert refused("127.0.0.1", port), "the Service's listener must bind the node address only"

    log = httpx.get(
        f"{server.url}/api/v1/namespaces/default/pods/{pod.metadata.name}/log", timeout=10
    )
    assert log.status_code == 200, log.text  # proxied by the server to 127.0.0.2:agentPort

    assert agent.stop() == 0
