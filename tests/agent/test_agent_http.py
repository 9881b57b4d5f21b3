"""The agent's HTTP API: logs (whole, tail, previous, follow without gaps across a restart, end
of stream when the pod goes), usage, errors as Status bodies, and its persisted port.

The agent's state is a small in-memory view (pods by name, a scripted usage reader); the logs
are real files. Follow runs against a real uvicorn on 127.0.0.1, started and stopped here.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shoal.agent.http import AgentHttp, AgentView, create_agent_app, follow_start, http_port
from shoal.agent.logs import PodLogs
from shoal.agent.usage import PodReading, Reading, UsageSampler
from shoal.api.pod import Pod

NODE = "node-a"


def make_pod(name: str, uid: str, phase: str = "Running") -> Pod:
    return Pod.from_json(
        {
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"command": ["x"], "nodeName": NODE},
            "status": {"phase": phase},
        }
    )


class FakeAgent:
    """Pods bound to the node, and usage readings handed out one after the other."""

    def __init__(self, root: Path) -> None:
        self.pods: dict[tuple[str, str], Pod] = {}
        self.readings = [
            Reading(0.0, 0, {"u1": PodReading("u1", "default", "web", "sandbox", 0, 10, 2)}),
            Reading(
                2.0, 10**9, {"u1": PodReading("u1", "default", "web", "sandbox", 5 * 10**8, 20, 3)}
            ),
        ]
        sampler = UsageSampler(self.read, min_window=0.0)
        self.view = AgentView(NODE, root / "logs", self.find, sampler)

    def find(self, namespace: str, name: str) -> Pod | None:
        return self.pods.get((namespace, name))

    async def read(self) -> Reading:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]

    def logs(self, name: str, uid: str) -> PodLogs:
        logs = PodLogs.for_pod(self.view.logs_root, "default", name, uid)
        logs.directory.mkdir(parents=True, exist_ok=True)
        return logs


@pytest.fixture
def agent(tmp_path: Path) -> FakeAgent:
    return FakeAgent(tmp_path)


@pytest.fixture
async def api(agent: FakeAgent) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_agent_app(agent.view))
    async with httpx.AsyncClient(transport=transport, base_url="http://agent.test") as client:
        yield client


def numbered(first: int, last: int) -> str:
    return "".join(f"line {n}\n" for n in range(first, last + 1))


async def test_whole_log_tail_and_previous(agent: FakeAgent, api: httpx.AsyncClient) -> None:
    agent.pods[("default", "web")] = make_pod("web", "u1")
    logs = agent.logs("web", "u1")
    logs.current.write_text(numbered(1, 5))
    (logs.directory / "current.log.1").write_text(numbered(0, 0))
    assert (await api.get("/pods/default/web/log")).text == numbered(0, 5)
    assert (await api.get("/pods/default/web/log", params={"tailLines": 2})).text == numbered(4, 5)
    assert (await api.get("/pods/default/web/log", params={"tailLines": 0})).text == ""
    missing = await api.get("/pods/default/web/log", params={"previous": "true"})
    assert missing.status_code == 404 and "has not restarted" in missing.json()["message"]
    logs.new_run()
    logs.current.write_text("after restart\n")
    previous = await api.get("/pods/default/web/log", params={"previous": "true", "tailLines": 1})
    assert previous.text == numbered(5, 5)
    assert (await api.get("/pods/default/web/log")).text == "after restart\n"


async def test_unknown_pod_and_bad_parameters_are_status_errors(api: httpx.AsyncClient) -> None:
    unknown = await api.get("/pods/default/nope/log")
    assert unknown.status_code == 404
    assert unknown.json()["kind"] == "Status" and NODE in unknown.json()["message"]
    bad = await api.get("/pods/default/nope/log", params={"tailLines": -1})
    assert bad.status_code == 422 and "tailLines" in bad.json()["message"]
    climbing = await api.get("/pods/default/web/log", params={"uid": "../../../etc"})
    assert climbing.status_code == 400


async def test_uid_from_the_server_wins_over_a_stale_cache(
    agent: FakeAgent, api: httpx.AsyncClient
) -> None:
    """The API server passes the uid it knows: a pod recreated under the same name is not
    mistaken for the old one still in the agent's cache."""
    agent.pods[("default", "web")] = make_pod("web", "old")
    agent.logs("web", "old").current.write_text("old pod\n")
    agent.logs("web", "new").current.write_text("new pod\n")
    answer = await api.get("/pods/default/web/log", params={"uid": "new"})
    assert answer.text == "new pod\n"


def test_follow_start_stops_at_the_last_complete_line(agent: FakeAgent) -> None:
    logs = agent.logs("web", "u1")
    logs.current.write_bytes(b"a\nb\npartial")
    backlog, offset = follow_start(logs, tail=None)
    assert b"".join(backlog) == b"a\nb\n" and offset == 4
    backlog, offset = follow_start(logs, tail=1)
    assert backlog == [b"b\n"] and offset == 4
    logs.current.unlink()
    assert follow_start(logs, tail=3) == ([b""], None)


async def test_usage_is_a_rate_over_the_window(api: httpx.AsyncClient) -> None:
    answer = (await api.get("/usage")).json()
    assert answer["kind"] == "NodeUsage" and answer["node"] == NODE
    assert answer["windowSeconds"] == 2.0 and answer["cpuMillis"] == 500
    [pod] = answer["pods"]
    assert pod["uid"] == "u1" and pod["cpuMillis"] == 250  # 0.5 s of CPU in 2 s
    assert pod["memoryBytes"] == 20 and pod["pids"] == 3 and pod["driver"] == "sandbox"
    assert (await api.get("/usage", params={"namespace": "other"})).json()["pods"] == []


def test_the_port_is_persisted_and_replaced_when_taken(tmp_path: Path) -> None:
    port = http_port(tmp_path, "127.0.0.1")
    assert http_port(tmp_path, "127.0.0.1") == port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert http_port(tmp_path, "127.0.0.1") != port


@pytest.fixture
async def live(agent: FakeAgent, tmp_path: Path) -> AsyncIterator[str]:
    server = AgentHttp(agent.view, host="127.0.0.1", data_dir=tmp_path)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def next_text(lines: AsyncIterator[str], want: str) -> str:
    """Read the stream until `want` has arrived (bounded by a generous timeout)."""
    seen = ""
    async with asyncio.timeout(10):
        while want not in seen:
            seen += await anext(lines)
    return seen


async def test_follow_continues_without_gaps_across_a_restart_and_ends_with_the_pod(
    agent: FakeAgent, live: str
) -> None:
    agent.pods[("default", "web")] = make_pod("web", "u1")
    logs = agent.logs("web", "u1")
    logs.current.write_text(numbered(1, 3))
    params = {"follow": "true", "tailLines": "2"}
    async with (
        httpx.AsyncClient(base_url=live, timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", "/pods/default/web/log", params=params) as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_text()
        assert await next_text(lines, "line 3\n") == numbered(2, 3)
        with logs.current.open("a") as out:
            out.write(numbered(4, 5))
        seen = await next_text(lines, "line 5\n")
        with logs.current.open("a") as out:  # written just before the restart renames it
            out.write(numbered(6, 6))
        logs.new_run()
        logs.current.write_text(numbered(7, 7))
        seen += await next_text(lines, "line 7\n")
        assert seen == numbered(4, 7)
        del agent.pods[("default", "web")]
        logs.remove()
        async with asyncio.timeout(10):
            rest = [chunk async for chunk in lines]
        assert rest == []


async def test_follow_of_a_finished_pod_ends(agent: FakeAgent, live: str) -> None:
    agent.pods[("default", "job")] = make_pod("job", "u2", phase="Succeeded")
    agent.logs("job", "u2").current.write_text("done\n")
    async with httpx.AsyncClient(base_url=live, timeout=10) as client:
        answer = await client.get("/pods/default/job/log", params={"follow": "true"})
    assert answer.text == "done\n"


async def test_a_taken_port_gives_way_to_a_fresh_one(agent: FakeAgent, tmp_path: Path) -> None:
    server = AgentHttp(agent.view, host="127.0.0.1", data_dir=tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", server.port))
        holder.listen()
        taken = server.port
        await server.start()
        try:
            assert server.port != taken
            assert json.loads((tmp_path / "agent-http.json").read_text())["port"] == server.port
            async with httpx.AsyncClient(timeout=5) as client:
                answer = await client.get(f"http://127.0.0.1:{server.port}/healthz")
            assert answer.text == "ok"
        finally:
            await server.stop()


# -- Envoy stats for the analysis provider -------------------------------------------------------
ENVOY_ANSWER = {
    "stats": [
        {"name": "cluster.default.web.h1.upstream_rq_2xx", "value": 40},
        {"name": "cluster.default.web.h1.upstream_rq_5xx", "value": 2},
        {
            "histograms": [
                {
                    "name": "cluster.default.web.h1.upstream_rq_time",
                    "buckets": [
                        {"upper_bound": 1, "cumulative": 30},
                        {"upper_bound": 5, "cumulative": 42},
                    ],
                }
            ]
        },
    ]
}


@pytest.fixture
async def admin() -> AsyncIterator[tuple[int, list[str]]]:
    """A stand-in for Envoy's admin API on a free port: answers ENVOY_ANSWER to any GET and
    keeps the request targets it saw (the real admin is exercised by tests/e2e)."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        seen.append(request.split(" ")[1])
        body = json.dumps(ENVOY_ANSWER).encode()
        head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        writer.write(head % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], seen


async def test_envoy_stats_answers_the_named_clusters_only(
    agent: FakeAgent, api: httpx.AsyncClient, admin: tuple[int, list[str]]
) -> None:
    port, seen = admin
    agent.view.envoy_admin_port = port
    answer = await api.get("/envoy/stats", params={"cluster": ["default.web.h1", "default.web.h2"]})
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["kind"] == "EnvoyClusterStats" and document["node"] == NODE
    assert document["clusters"] == {
        "default.web.h1": {"2xx": 40, "5xx": 2, "buckets": [[1.0, 30], [5.0, 42]]},
        "default.web.h2": {"buckets": []},
    }
    # The one question asked of admin: these clusters' answer counters and latency histogram.
    [target] = seen
    query = httpx.URL(target).params
    assert httpx.URL(target).path == "/stats" and query["format"] == "json"
    assert query["filter"] == (
        r"^cluster\.(default\.web\.h1|default\.web\.h2)\.upstream_rq_(2xx|3xx|4xx|5xx|time)$"
    )


async def test_envoy_stats_is_no_proxy_and_says_when_envoy_is_missing(
    agent: FakeAgent, api: httpx.AsyncClient, admin: tuple[int, list[str]]
) -> None:
    port, seen = admin
    agent.view.envoy_admin_port = port
    for bad in ([], [".*"], ["a|b"], ["web)|(.*"], ["x"] * 1 + [f"c{i}" for i in range(64)]):
        answer = await api.get("/envoy/stats", params={"cluster": bad})
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["kind"] == "Status"
    assert seen == []  # nothing reached admin
    other = await api.get("/envoy/stats/../../quitquitquit")
    assert other.status_code == 404 and seen == []
    agent.view.envoy_admin_port = None
    no_envoy = await api.get("/envoy/stats", params={"cluster": "default.web.h1"})
    assert no_envoy.status_code == 503 and "runs no Envoy" in no_envoy.json()["message"]
    with socket.socket() as closed:  # a port nobody listens on: Envoy is down
        closed.bind(("127.0.0.1", 0))
        agent.view.envoy_admin_port = closed.getsockname()[1]
        down = await api.get("/envoy/stats", params={"cluster": "default.web.h1"})
    assert down.status_code == 503 and "ConnectError" in down.json()["message"]
