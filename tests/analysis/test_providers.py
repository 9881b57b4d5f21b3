"""Metric providers against real things: a command (exec), a local HTTP server (web), and
the envoy provider's refusal to measure nothing."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from shoal.analysis.providers import Target, measure, pick
from shoal.api.analysis import Metric


def metric(provider: dict[str, object]) -> Metric:
    return Metric.from_json({"name": "m", "provider": provider})


async def test_exec_reports_exit_code_output_and_number() -> None:
    script = "import sys; print(' 0.25 '); sys.exit(3)"
    observed = await measure(metric({"exec": {"command": [sys.executable, "-c", script]}}),
                             Target())  # fmt: skip
    assert observed.value == {"exitCode": 3, "output": "0.25", "value": 0.25}


async def test_exec_timeout_kills_the_command_and_is_an_error() -> None:
    started = time.monotonic()
    slow = {"command": [sys.executable, "-c", "import time; time.sleep(30)"],
            "timeoutSeconds": 0.3}  # fmt: skip
    observed = await measure(metric({"exec": slow}), Target())
    assert observed.error is not None and "timed out" in observed.error
    assert time.monotonic() - started < 5
    missing = await measure(metric({"exec": {"command": ["/nonexistent/tool"]}}), Target())
    assert missing.error is not None and "cannot run" in missing.error


@pytest.fixture
async def web() -> AsyncIterator[str]:
    """A one-route HTTP server on a free port: /ok answers JSON, anything else 500."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        path = request.split(" ")[1]
        ok = path == "/ok"
        body = json.dumps({"data": {"result": [{"value": 0.97}]}}).encode() if ok else b"no"
        status = "200 OK" if ok else "500 Internal Server Error"
        writer.write(f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n"
                     "connection: close\r\n\r\n".encode() + body)  # fmt: skip
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def test_web_picks_a_json_field_and_reports_failures(web: str) -> None:
    good = await measure(metric({"web": {"url": f"{web}/ok", "jsonPath": "data.result[0].value"}}),
                         Target())  # fmt: skip
    assert good.value == 0.97 and good.error is None
    whole = await measure(metric({"web": {"url": f"{web}/ok"}}), Target())
    assert whole.value == {"data": {"result": [{"value": 0.97}]}}
    missing = await measure(metric({"web": {"url": f"{web}/ok", "jsonPath": "data.nope"}}),
                            Target())  # fmt: skip
    assert missing.error is not None and "nope" in missing.error
    failing = await measure(metric({"web": {"url": f"{web}/fail"}}), Target())
    assert failing.error is not None and "HTTP 500" in failing.error


async def test_envoy_without_clusters_or_nodes_is_an_error_not_a_value() -> None:
    envoy = metric({"envoy": {"metric": "successRate"}})
    assert "no Service" in (await measure(envoy, Target())).error  # type: ignore[operator]
    no_nodes = await measure(envoy, Target(clusters=("ns.web.h",)))
    assert no_nodes.error is not None and "node" in no_nodes.error
    partial = Target(clusters=("ns.web.h",), agents={"a": "http://x"}, unreadable=("b",))
    unreadable = await measure(envoy, partial)
    assert (
        unreadable.error is not None and "b route traffic but report no agent" in unreadable.error
    )


def test_pick_walks_dots_and_indexes() -> None:
    assert pick({"a": [{"b": 2}]}, "a[0].b") == 2
    assert pick(5, None) == 5
    with pytest.raises(KeyError):
        pick({"a": []}, "a[1]")


@pytest.fixture
async def agents() -> AsyncIterator[tuple[str, str, list[str]]]:
    """Two stand-ins for node agents' /envoy/stats: one answers counts, one an error Status;
    both keep the request targets they saw."""
    seen: list[str] = []

    def answer(ok: bool) -> tuple[bytes, bytes]:
        if ok:
            body = {"clusters": {"ns.web.h": {"2xx": 97, "5xx": 3, "buckets": [[5, 100]]}}}
            return b"200 OK", json.dumps(body).encode()
        status = {"kind": "Status", "message": "Envoy on node b: ConnectError: refused"}
        return b"503 Service Unavailable", json.dumps(status).encode()

    def handler(
        ok: bool,
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = (await reader.readuntil(b"\r\n\r\n")).decode()
            seen.append(request.split(" ")[1])
            status, body = answer(ok)
            writer.write(b"HTTP/1.1 %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                         % (status, len(body), body))  # fmt: skip
            await writer.drain()
            writer.close()

        return handle

    good = await asyncio.start_server(handler(True), "127.0.0.1", 0)
    bad = await asyncio.start_server(handler(False), "127.0.0.1", 0)
    async with good, bad:
        yield (
            f"http://127.0.0.1:{good.sockets[0].getsockname()[1]}",
            f"http://127.0.0.1:{bad.sockets[0].getsockname()[1]}",
            seen,
        )


async def test_envoy_reads_every_node_through_its_agent(
    agents: tuple[str, str, list[str]],
) -> None:
    good, bad, seen = agents
    envoy = metric({"envoy": {"metric": "successRate"}})
    observed = await measure(envoy, Target(clusters=("ns.web.h",), agents={"a": good}))
    assert observed.error is None and observed.value == pytest.approx(0.97)
    assert observed.snapshot == {"a|ns.web.h": {"2xx": 97, "5xx": 3, "buckets": [[5.0, 100]]}}
    assert seen == ["/envoy/stats?cluster=ns.web.h"]
    failing = await measure(envoy, Target(clusters=("ns.web.h",), agents={"a": good, "b": bad}))
    assert failing.value is None and failing.error is not None
    assert "node b: Envoy on node b: ConnectError" in failing.error
