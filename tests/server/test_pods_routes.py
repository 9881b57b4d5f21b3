"""Pod logs and usage through the API server: found by the pod's node and relayed from that
node's agent, with clear errors when that is impossible.

The API server runs over the in-memory store; the agent behind it is the real agent app
(`shoal.agent.http`) over a small in-memory view, reached through httpx's ASGI transport
(the router's seam), except for the unreachable-agent test, which dials a closed port.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal.agent.http import AgentView, create_agent_app
from shoal.agent.logs import PodLogs
from shoal.agent.usage import PodReading, Reading, UsageSampler
from shoal.api.pod import Pod
from shoal.server.app import create_app
from shoal.server.pods_routes import pods_router
from shoal.store.memory import MemoryStore

NS = "default"
GI = 2**30


def pod_doc(name: str, uid: str, node: str | None = "n1", **resources: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": uid, "labels": {"app": name}},
        "spec": {"command": ["x"], "nodeName": node, "resources": resources},
        "status": {"phase": "Running"},
    }


def node_doc(name: str = "n1", agent_port: int | None = 9, cpu: str = "2") -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "address": "127.0.0.1",
            "agentPort": agent_port,
            "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": 10},
        },
    }


class Agent:
    """The agent of node n1: pods by name from the store's documents, scripted usage."""

    def __init__(self, root: Path) -> None:
        self.pods: dict[tuple[str, str], Pod] = {}
        first = {"u1": PodReading("u1", NS, "web", "sandbox", 0, 0, 1)}
        second = {
            "u1": PodReading("u1", NS, "web", "sandbox", 10**9, 64 * 2**20, 4),
            "u9": PodReading("u9", NS, "gone", "process", 0, 1, 1),
        }
        self.readings = [Reading(0.0, 0, first), Reading(1.0, 10**9, second)]
        sampler = UsageSampler(self.read, min_window=0.0)
        self.view = AgentView("n1", root / "logs", lambda ns, n: self.pods.get((ns, n)), sampler)

    async def read(self) -> Reading:
        return self.readings[0] if len(self.readings) == 1 else self.readings.pop(0)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(history_limit=50)


@pytest.fixture
def agent(tmp_path: Path) -> Agent:
    return Agent(tmp_path)


def client_for(store: MemoryStore, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    app = create_app(store, extra_routers=[pods_router(transport)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shoal.test")


@pytest.fixture
async def api(store: MemoryStore, agent: Agent) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(store, httpx.ASGITransport(app=create_agent_app(agent.view))) as client:
        yield client


async def add_web(store: MemoryStore, agent: Agent, **resources: Any) -> None:
    await store.create(node_doc())
    doc = pod_doc("web", "u1", **resources)
    await store.create(doc)
    agent.pods[(NS, "web")] = Pod.from_json(doc)


async def test_logs_are_relayed_with_their_parameters(
    store: MemoryStore, agent: Agent, api: httpx.AsyncClient
) -> None:
    await add_web(store, agent)
    logs = PodLogs.for_pod(agent.view.logs_root, NS, "web", "u1")
    logs.directory.mkdir(parents=True)
    logs.current.write_text("one\ntwo\nthree\n")
    path = f"/api/v1/namespaces/{NS}/pods/web/log"
    answer = await api.get(path, params={"tailLines": 2})
    assert answer.status_code == 200 and answer.text == "two\nthree\n"
    assert answer.headers["content-type"].startswith("text/plain")
    previous = await api.get(path, params={"previous": "true"})
    assert previous.status_code == 404 and "has not restarted" in previous.json()["message"]


async def test_an_unscheduled_pod_says_why(store: MemoryStore, api: httpx.AsyncClient) -> None:
    doc = pod_doc("big", "u2", node=None)
    doc["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 node: insufficient memory.",
        }
    ]
    await store.create(doc)
    answer = await api.get(f"/api/v1/namespaces/{NS}/pods/big/log")
    assert answer.status_code == 400
    assert "not scheduled" in answer.json()["message"]
    assert "insufficient memory" in answer.json()["message"]
    missing = await api.get(f"/api/v1/namespaces/{NS}/pods/nope/log")
    assert missing.status_code == 404


async def test_nodes_that_cannot_be_asked(store: MemoryStore, api: httpx.AsyncClient) -> None:
    await store.create(pod_doc("orphan", "u3", node="gone"))
    answer = await api.get(f"/api/v1/namespaces/{NS}/pods/orphan/log")
    assert answer.status_code == 503 and "not registered" in answer.json()["message"]
    await store.create(node_doc("old", agent_port=None))
    await store.create(pod_doc("legacy", "u4", node="old"))
    answer = await api.get(f"/api/v1/namespaces/{NS}/pods/legacy/usage")
    assert answer.status_code == 503 and "agentPort" in answer.json()["message"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_agent_is_named(store: MemoryStore) -> None:
    port = closed_port()
    await store.create(node_doc(agent_port=port))
    await store.create(pod_doc("web", "u1"))
    async with client_for(store, None) as api:
        answer = await api.get(f"/api/v1/namespaces/{NS}/pods/web/log")
        assert answer.status_code == 503
        assert f"127.0.0.1:{port}" in answer.json()["message"]
        listing = (await api.get(f"/api/v1/namespaces/{NS}/podusage")).json()
        assert listing["items"] == [] and listing["errors"][0]["node"] == "n1"
        [node] = (await api.get("/api/v1/nodeusage")).json()["items"]
        assert node["usage"] is None and "cannot reach" in node["error"]


async def test_pod_usage_carries_limits_and_requests(
    store: MemoryStore, agent: Agent, api: httpx.AsyncClient
) -> None:
    await add_web(store, agent, limits={"cpu": "500m", "memory": "128Mi", "pids": 32})
    answer = (await api.get(f"/api/v1/namespaces/{NS}/pods/web/usage")).json()
    assert answer["kind"] == "PodUsage" and answer["node"] == "n1"
    assert answer["usage"] == {
        "cpuMillis": 1000,
        "cpuSeconds": 1.0,
        "memoryBytes": 64 * 2**20,
        "pids": 4,
        "driver": "sandbox",
    }
    assert answer["limits"] == {"cpuMillis": 500, "memoryBytes": 128 * 2**20, "pids": 32}
    assert answer["requests"] == {"cpuMillis": None, "memoryBytes": None}


async def test_usage_lists_only_pods_of_the_store(
    store: MemoryStore, agent: Agent, api: httpx.AsyncClient
) -> None:
    """The agent also reports u9, which the store no longer has: it is not listed."""
    await add_web(store, agent, requests={"cpu": "250m", "memory": "1Gi"})
    await store.create(pod_doc("db", "u5", requests={"cpu": "1"}))
    listing = (await api.get(f"/api/v1/namespaces/{NS}/podusage")).json()
    assert [item["metadata"]["name"] for item in listing["items"]] == ["web"]
    assert listing["errors"] == []
    selected = await api.get("/api/v1/podusage", params={"labelSelector": "app=db"})
    assert selected.json()["items"] == []
    node = (await api.get("/api/v1/nodes/n1/usage")).json()
    assert node["requested"] == {"cpuMillis": 1250, "memoryBytes": GI, "pods": 2}
    assert node["allocatable"] == {"cpuMillis": 2000, "memoryBytes": 4 * GI, "pods": 10}
    assert node["usage"]["pods"] == 2 and node["error"] is None
    assert (await api.get("/api/v1/nodes/nope/usage")).status_code == 404
