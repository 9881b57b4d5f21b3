"""The differ's HTTP: the mirror receiver and the keep-alive upstream client, against real
sockets on 127.0.0.1 (an independent stub server and httpx as the other side)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from differ_stubs import StubUpstream, json_answer

from shoal.differ.http import (
    MirroredRequest,
    MirrorServer,
    UpstreamPool,
    encode_request,
    unshadowed_host,
)


def get(target: str = "/", method: str = "GET", body: bytes = b"") -> bytes:
    return encode_request(method, target, (("host", "svc"),), body)


def echo(method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
    return json_answer({"method": method, "target": target, "body": body.decode()})


@pytest.fixture
async def upstream() -> AsyncIterator[StubUpstream]:
    stub = await StubUpstream(echo).start()
    yield stub
    await stub.close()


async def test_answers_are_read_and_connections_reused(upstream: StubUpstream) -> None:
    pool = UpstreamPool()
    for number in range(5):
        reply = await pool.send(upstream.address, get(f"/n/{number}"))
        assert reply.status == 200
        assert reply.header("content-type") == "application/json"
        assert b'"target": "/n/%d"' % number in reply.body
    assert upstream.connections == 1
    await pool.close()


async def test_bodies_are_sent_with_their_length(upstream: StubUpstream) -> None:
    pool = UpstreamPool()
    reply = await pool.send(upstream.address, get("/p", "POST", b"hello"))
    assert b'"body": "hello"' in reply.body
    assert upstream.received[0].headers["content-length"] == "5"
    empty = await pool.send(upstream.address, get("/p", "POST"))
    assert empty.status == 200 and upstream.received[1].headers["content-length"] == "0"
    assert "content-length" not in (await _headers_of(pool, upstream, "GET"))
    await pool.close()


async def _headers_of(pool: UpstreamPool, upstream: StubUpstream, method: str) -> dict[str, str]:
    await pool.send(upstream.address, get("/h", method))
    return upstream.received[-1].headers


async def test_chunked_answers() -> None:
    stub = await StubUpstream(echo, chunked=True).start()
    pool = UpstreamPool()
    try:
        for _ in range(3):
            reply = await pool.send(stub.address, get("/chunked"))
            assert reply.body.startswith(b"{") and reply.body.endswith(b"}")
        assert stub.connections == 1
    finally:
        await pool.close()
        await stub.close()


async def test_head_answers_have_no_body_and_keep_the_connection(upstream: StubUpstream) -> None:
    pool = UpstreamPool(timeout_s=2)
    reply = await pool.send(upstream.address, get("/h", "HEAD"), head=True)
    assert reply.status == 200 and reply.body == b""
    assert reply.header("content-length") not in (None, "0")
    after = await pool.send(upstream.address, get("/after"))
    assert b"/after" in after.body
    assert upstream.connections == 1
    await pool.close()


async def test_connection_close_answers_are_not_reused() -> None:
    stub = await StubUpstream(echo, close_after_each=True).start()
    pool = UpstreamPool()
    try:
        for _ in range(3):
            assert (await pool.send(stub.address, get())).status == 200
        assert stub.connections == 3
    finally:
        await pool.close()
        await stub.close()


async def test_a_keep_alive_connection_closed_by_the_upstream_is_retried(
    upstream: StubUpstream,
) -> None:
    pool = UpstreamPool()
    assert (await pool.send(upstream.address, get("/1"))).status == 200
    await upstream.drop_idle_connections()
    reply = await pool.send(upstream.address, get("/2"))
    assert reply.status == 200 and b"/2" in reply.body
    assert upstream.connections == 2
    await pool.close()


async def test_refused_connection_is_a_reply_without_status() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reply = await UpstreamPool().send(("127.0.0.1", port), get())
    assert reply.status == 0 and reply.error is not None
    assert "Connect" in reply.error or "refused" in reply.error.lower()


async def test_timeout_is_a_reply_without_status() -> None:
    stub = await StubUpstream(echo, delay_s=1.0).start()
    pool = UpstreamPool(timeout_s=0.1)
    try:
        reply = await pool.send(stub.address, get())
        assert reply.status == 0 and reply.error is not None and "Timeout" in reply.error
    finally:
        await pool.close()
        await stub.close()


async def test_forget_closes_idle_connections_of_gone_addresses(upstream: StubUpstream) -> None:
    pool = UpstreamPool()
    await pool.send(upstream.address, get())
    pool.forget(set())
    await pool.send(upstream.address, get())
    assert upstream.connections == 2
    await pool.close()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[MirroredRequest]]]:
    mirrored: list[MirroredRequest] = []

    def admin(method: str, target: str) -> tuple[int, str, bytes]:
        return (200, "text/plain", f"admin {method} {target}".encode())

    server = MirrorServer(mirrored.append, admin, max_body_bytes=10)
    port = await server.start("127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}", mirrored
    await server.close()


async def test_mirrored_requests_are_accepted_at_once_and_handed_over(
    receiver: tuple[str, list[MirroredRequest]],
) -> None:
    url, mirrored = receiver
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.post(
            "/orders/1?x=1", headers={"host": "shop-shadow", "x-a": "b"}, content=b"body"
        )
        assert answer.status_code == 202 and answer.content == b""
        await client.get("/again", headers={"host": "shop-shadow:8080"})
        await client.get("/marked", headers={"host": "shop", "x-shoal-shadow": "1"})
    first, second, third = mirrored
    assert (first.method, first.target, first.body) == ("POST", "/orders/1?x=1", b"body")
    assert ("host", "shop") in first.headers and ("x-a", "b") in first.headers
    assert ("host", "shop:8080") in second.headers
    assert third.target == "/marked" and ("host", "shop") in third.headers


@pytest.mark.parametrize(
    ("host", "original"),
    [
        ("shop-shadow", "shop"),
        ("shop-shadow:8080", "shop:8080"),
        ("127.0.0.1-shadow:7000", "127.0.0.1:7000"),
        ("shop", None),
        ("shop:8080", None),
        ("shadow", None),
        ("[::1]", None),
    ],
)
def test_unshadowed_host(host: str, original: str | None) -> None:
    assert unshadowed_host(host) == original


async def test_other_hosts_reach_the_admin_api(receiver: tuple[str, list[MirroredRequest]]) -> None:
    url, mirrored = receiver
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.get("/stats?x=1")
    assert answer.status_code == 200 and answer.text == "admin GET /stats?x=1"
    assert mirrored == []


async def test_oversized_bodies_are_marked_truncated(
    receiver: tuple[str, list[MirroredRequest]],
) -> None:
    url, mirrored = receiver
    async with httpx.AsyncClient(base_url=url) as client:
        await client.put("/big", headers={"host": "s-shadow"}, content=b"x" * 100)
    assert mirrored[0].truncated and mirrored[0].body == b""


async def test_garbage_gets_400_and_the_server_keeps_serving(
    receiver: tuple[str, list[MirroredRequest]],
) -> None:
    url, _ = receiver
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_each_listener_tags_its_mirrors_with_its_app_port() -> None:
    mirrored: list[MirroredRequest] = []
    server = MirrorServer(mirrored.append, lambda m, t: (200, "text/plain", b""))
    default = await server.start("127.0.0.1", 0)
    admin = await server.start("127.0.0.1", 0, "admin")
    try:
        async with httpx.AsyncClient() as client:
            for port in (default, admin):
                await client.get(f"http://127.0.0.1:{port}/x", headers={"host": "shop-shadow"})
    finally:
        await server.close()
    assert [m.port for m in mirrored] == [None, "admin"]
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):  # close() stopped every listener
            await client.get(f"http://127.0.0.1:{admin}/healthz", timeout=2)
