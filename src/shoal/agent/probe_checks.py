"""One probe attempt against a pod: httpGet, tcpSocket or exec (the I/O half of probes).

Called by `probes.ProbeWorker` through `check_probe`, and by `pod_probing.check` (the pod
worker's attempts) through `check_exec` (its httpGet and tcpSocket go through socket_probes).
Every attempt is bounded by the probe's timeoutSeconds and ends in a `CheckResult`, never an
exception. Named ports resolve to the ports the agent allocated for the pod. httpGet uses httpx
(no redirects followed, no keep-alive: like Kubernetes, any 200-399 answer is a success and a
probe leaves no idle connection behind).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from shoal.agent.exec_action import ExecContext, run_exec
from shoal.api.pod import HTTPGetAction, Probe, TCPSocketAction

USER_AGENT = "shoal-probe/1"


@dataclass(frozen=True)
class CheckResult:
    success: bool
    message: str


@dataclass(frozen=True)
class ProbeTarget:
    """What a pod's probes need to know about it: its ports by name and exec context."""

    exec_context: ExecContext
    ports: Mapping[str, int] = field(default_factory=dict)


def resolve_port(port: int | str, ports: Mapping[str, int]) -> int | None:
    """A number is used as is; a name is looked up in the pod's allocated ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    return ports.get(port)


def probe_client() -> httpx.AsyncClient:
    """One client per pod prober; no keep-alive, so each attempt is a fresh connection."""
    return httpx.AsyncClient(
        follow_redirects=False,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"User-Agent": USER_AGENT, "Accept": "*/*"},
    )


async def check_http(
    action: HTTPGetAction, port: int, limit_seconds: float, client: httpx.AsyncClient
) -> CheckResult:
    path = action.path if action.path.startswith("/") else "/" + action.path
    url = f"http://{action.host}:{port}{path}"
    headers = {header.name: header.value for header in action.http_headers}
    try:
        response = await client.get(url, headers=headers, timeout=limit_seconds)
    except httpx.TimeoutException:
        return CheckResult(False, f"GET {url}: timeout after {limit_seconds:g}s")
    except httpx.HTTPError as error:
        return CheckResult(False, f"GET {url}: {type(error).__name__}: {error}")
    if 200 <= response.status_code < 400:
        return CheckResult(True, f"GET {url}: {response.status_code}")
    return CheckResult(False, f"GET {url}: HTTP {response.status_code}")


async def check_tcp(action: TCPSocketAction, port: int, limit_seconds: float) -> CheckResult:
    target = f"{action.host}:{port}"
    try:
        async with asyncio.timeout(limit_seconds):
            _, writer = await asyncio.open_connection(action.host, port)
    except TimeoutError:
        return CheckResult(False, f"tcp {target}: timeout after {limit_seconds:g}s")
    except OSError as error:
        return CheckResult(False, f"tcp {target}: {error.strerror or error}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return CheckResult(True, f"tcp {target}: connected")


async def check_exec(probe: Probe, target: ProbeTarget) -> CheckResult:
    """One attempt of an exec probe (`probe.exec` is set)."""
    assert probe.exec is not None
    result = await run_exec(probe.exec.command, target.exec_context, probe.timeout_seconds)
    return CheckResult(result.succeeded, result.describe())


async def check_probe(probe: Probe, target: ProbeTarget, client: httpx.AsyncClient) -> CheckResult:
    """Run one attempt of `probe` (exactly one handler is set, the API validated that)."""
    if probe.exec is not None:
        return await check_exec(probe, target)
    action = probe.http_get or probe.tcp_socket
    assert action is not None
    port = resolve_port(action.port, target.ports)
    if port is None:
        return CheckResult(False, f"port {action.port!r} is not a port of this pod")
    if isinstance(action, HTTPGetAction):
        return await check_http(action, port, probe.timeout_seconds, client)
    return await check_tcp(action, port, probe.timeout_seconds)
