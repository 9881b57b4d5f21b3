"""socket_probes: httpGet and tcpSocket attempts against a real local server (asyncio, in this
event loop): status classes, headers sent, timeout, refused, a non-HTTP answer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from shoal.agent.socket_probes import http_get, request_bytes, status_code, tcp_connect
from shoal.api.pod import HTTPGetAction

ANSWERS = {
    b"/ok": b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    b"/moved": b"HTTP/1.0 301 Moved\r\nlocation: /ok\r\n\r\n",
    b"/broken": b"HTTP/1.1 500 Internal Server Error\r\n\r\n",
    b"/garbage": b"SSH-2.0-OpenSSH\r\n",
}


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[bytes]]]:
    requests: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:  # a tcp probe: connects and goes
            writer.close()
            return
        requests.append(request)
        path = request.split(b" ")[1]
        if path == b"/slow":
            await asyncio.sleep(5)
        writer.write(ANSWERS.get(path, b"HTTP/1.1 404 Not Found\r\n\r\n"))
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield port, requests


def get(path: str, **extra: object) -> HTTPGetAction:
    return HTTPGetAction.model_validate({"path": path, "port": 1, **extra})


async def test_200_to_399_succeed_and_the_rest_fail(server: tuple[int, list[bytes]]) -> None:
    port, _ = server
    url = f"http://127.0.0.1:{port}"
    assert (await http_get(get("/ok"), port, 1)).message == f"GET {url}/ok: 200"
    assert (await http_get(get("moved"), port, 1)).success, "no leading slash is fine"
    broken = await http_get(get("/broken"), port, 1)
    assert not broken.success and broken.message == f"GET {url}/broken: HTTP 500"
    assert not (await http_get(get("/nope"), port, 1)).success
    garbage = await http_get(get("/garbage"), port, 1)
    assert not garbage.success and "not an HTTP answer" in garbage.message


async def test_headers_host_and_a_fresh_connection_each_time(
    server: tuple[int, list[bytes]],
) -> None:
    port, requests = server
    action = get("/ok", httpHeaders=[{"name": "X-Probe", "value": "yes"}])
    assert (await http_get(action, port, 1)).success
    (request,) = requests
    assert request.startswith(b"GET /ok HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n".encode() in request
    assert b"X-Probe: yes\r\n" in request and b"Connection: close\r\n" in request


async def test_timeout_and_refused(server: tuple[int, list[bytes]]) -> None:
    port, _ = server
    slow = await http_get(get("/slow"), port, 0.1)
    assert not slow.success and slow.message.endswith("timeout after 0.1s")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = await http_get(get("/ok"), closed, 1)
    assert refused.message == f"GET http://127.0.0.1:{closed}/ok: Connection refused"


async def test_tcp_connects_or_says_why(server: tuple[int, list[bytes]]) -> None:
    port, _ = server
    assert (await tcp_connect("127.0.0.1", port, 1)).message == f"tcp 127.0.0.1:{port}: connected"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = await tcp_connect("127.0.0.1", closed, 1)
    assert refused.message == f"tcp 127.0.0.1:{closed}: Connection refused"


def test_status_line_parsing_and_request_shape() -> None:
    assert status_code(b"HTTP/1.1 204 No Content\r\n") == 204
    assert status_code(b"HTTP/2 200\r\n") is None
    assert status_code(b"") is None
    assert request_bytes(get("/x"), 8080).endswith(b"\r\n\r\n")
