"""pod_probing: the pod worker's probe attempts against real local sockets and commands (named
ports resolved from the run's ports, exec in the run's directory), and a run's prober wired to
them from the pod spec."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.agent.drivers.base import ProcessSpec
from shoal.agent.exec_action import ExecContext
from shoal.agent.pod_probing import check, run_prober
from shoal.agent.probe_checks import ProbeTarget
from shoal.agent.probes import ProbeEvent
from shoal.api.pod import Pod, Probe

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    """A local server answering 200 to any request (and letting bare connects go)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(OK)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def target(tmp_path: Path, ports: dict[str, int]) -> ProbeTarget:
    return ProbeTarget(ExecContext(cwd=tmp_path), ports)


async def test_named_ports_resolve_to_the_run_s_ports(http_port: int, tmp_path: Path) -> None:
    ports = {"http": http_port, "down": closed_port()}
    http = Probe.from_json({"httpGet": {"path": "/healthz", "port": "http"}})
    tcp_up = Probe.from_json({"tcpSocket": {"port": "http"}})
    tcp_down = Probe.from_json({"tcpSocket": {"port": "down"}})
    assert (await check(target(tmp_path, ports), http)).success
    assert (await check(target(tmp_path, ports), tcp_up)).success
    assert not (await check(target(tmp_path, ports), tcp_down)).success


async def test_a_port_the_pod_does_not_have_fails_with_its_name(tmp_path: Path) -> None:
    probe = Probe.from_json({"httpGet": {"path": "/", "port": "metrics"}})
    result = await check(target(tmp_path, {"http": 1}), probe)
    assert not result.success
    assert result.message == "port 'metrics' is not a port of this pod"


async def test_exec_runs_in_the_run_s_directory(tmp_path: Path) -> None:
    probe = Probe.from_json({"exec": {"command": ["sh", "-c", "test -f marker"]}})
    assert not (await check(target(tmp_path, {}), probe)).success
    (tmp_path / "marker").touch()
    assert (await check(target(tmp_path, {}), probe)).success


async def test_a_run_s_prober_probes_the_spec_s_ports(http_port: int, tmp_path: Path) -> None:
    pod = Pod.from_json(
        {
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "command": ["app"],
                "ports": [{"name": "http"}],
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http"},
                    "periodSeconds": 0.1,
                },
            },
        }
    )
    spec = ProcessSpec(
        argv=["app"], cwd=tmp_path, log_path=tmp_path / "log", pod_uid="u", pod_name="web",
        ports={"http": http_port},
    )  # fmt: skip
    events: list[ProbeEvent] = []
    ready = asyncio.Event()

    async def on_event(event: ProbeEvent) -> None:
        events.append(event)
        if event.kind == "readiness" and event.success:
            ready.set()

    prober = run_prober(pod, spec, on_event)
    prober.start()
    try:
        await asyncio.wait_for(ready.wait(), 10)
    finally:
        await prober.stop()
    assert prober.ready
    assert all(e.success for e in events), events
