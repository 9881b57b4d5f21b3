"""Single probe attempts against real sockets and commands: http status classes, timeouts,
refused connections, named ports, exec exit codes and timeouts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shoal.agent.drivers.groups import is_alive
from shoal.agent.exec_action import ExecContext, run_exec
from shoal.agent.probe_checks import ProbeTarget, check_probe, probe_client, resolve_port
from shoal.api.pod import Probe


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await reader.readuntil(b"\r\n\r\n")
    path = request.split(b" ")[1].decode()
    if path == "/slow":
        await asyncio.sleep(5)
    status = {"/ok": "200 OK", "/moved": "302 Found", "/broken": "500 Oops"}.get(path, "404 No")
    writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    writer.close()


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with probe_client() as http:
        yield http


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_probe(path: str, port: int | str, timeout: float = 1.0) -> Probe:
    return Probe.model_validate(
        {"httpGet": {"path": path, "port": port}, "timeoutSeconds": timeout}
    )


async def test_http_status_classes(
    http_port: int, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    target = ProbeTarget(ExecContext(cwd=tmp_path), ports={"web": http_port})
    ok = await check_probe(http_probe("/ok", "web"), target, client)
    moved = await check_probe(http_probe("/moved", http_port), target, client)
    broken = await check_probe(http_probe("/broken", "web"), target, client)
    missing = await check_probe(http_probe("/nope", "web"), target, client)
    assert (ok.success, moved.success, broken.success, missing.success) == (
        True, True, False, False,
    )  # fmt: skip
    assert "HTTP 500" in broken.message


async def test_http_timeout_and_refused(
    http_port: int, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    target = ProbeTarget(ExecContext(cwd=tmp_path))
    slow = await check_probe(http_probe("/slow", http_port, timeout=0.1), target, client)
    assert not slow.success and "timeout" in slow.message
    refused = await check_probe(http_probe("/ok", closed_port()), target, client)
    assert not refused.success and "ConnectError" in refused.message


async def test_unknown_named_port_fails_with_a_clear_message(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    target = ProbeTarget(ExecContext(cwd=tmp_path), ports={"web": 1})
    result = await check_probe(http_probe("/", "admin"), target, client)
    assert not result.success and "'admin' is not a port of this pod" in result.message


async def test_tcp_probe(http_port: int, client: httpx.AsyncClient, tmp_path: Path) -> None:
    target = ProbeTarget(ExecContext(cwd=tmp_path), ports={"web": http_port})
    up = Probe.model_validate({"tcpSocket": {"port": "web"}})
    down = Probe.model_validate({"tcpSocket": {"port": closed_port()}})
    assert (await check_probe(up, target, client)).success
    refused = await check_probe(down, target, client)
    assert not refused.success and "tcp 127.0.0.1:" in refused.message


async def test_exec_probe_uses_pod_env_and_cwd(client: httpx.AsyncClient, tmp_path: Path) -> None:
    (tmp_path / "marker").write_text("x")
    context = ExecContext(cwd=tmp_path, env={"WANT": "yes", "PATH": "/usr/bin:/bin"})
    target = ProbeTarget(context)
    good = Probe.model_validate(
        {"exec": {"command": ["sh", "-c", 'test "$WANT" = yes -a -f marker']}}
    )
    bad = Probe.model_validate({"exec": {"command": ["sh", "-c", "echo sick; exit 4"]}})
    assert (await check_probe(good, target, client)).success
    result = await check_probe(bad, target, client)
    assert not result.success and result.message == "command exited with code 4: sick"


async def test_exec_timeout_kills_the_command_group(tmp_path: Path) -> None:
    context = ExecContext(cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    result = await run_exec(["sh", "-c", "sleep 30 & echo $! > bg.pid; sleep 30"], context, 0.5)
    assert result.timed_out and not result.succeeded
    assert not is_alive(int((tmp_path / "bg.pid").read_text()))
    missing = await run_exec(["no-such-probe-command"], context, 1)
    assert missing.error is not None and "no-such-probe-command" in missing.error


def test_resolve_port() -> None:
    assert resolve_port(8080, {}) == 8080
    assert resolve_port("8080", {}) == 8080
    assert resolve_port("http", {"http": 20001}) == 20001
    assert resolve_port("grpc", {"http": 20001}) is None
