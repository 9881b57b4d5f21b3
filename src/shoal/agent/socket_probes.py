"""httpGet and tcpSocket probe attempts on plain asyncio streams (exec goes through
`probe_checks`).

Called by `pod_probing.check` for every httpGet and tcpSocket attempt of the pod worker, which
on a node of 200 pods means 100 a second or more, so their cost is the agent's idle CPU. Why by
hand: a probe needs one request line and the status code of the answer (or just a connect), and
httpx spends ~0.9 ms of CPU per such request against ~0.15 ms here (measured on this machine,
uvloop; its stream transports also beat bare `sock_connect` sockets there). Same rules as
`probe_checks` and Kubernetes: a fresh connection per attempt (`Connection: close`), no
redirects followed, any 200-399 answer is a success, the whole attempt is bounded by
timeoutSeconds.
"""

from __future__ import annotations

import asyncio
import os

from shoal.agent.probe_checks import USER_AGENT, CheckResult
from shoal.api.pod import HTTPGetAction

MAX_STATUS_LINE = 8192


def describe(error: Exception) -> str:
    """'Connection refused' rather than asyncio's 'Connect call failed (...)'."""
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)
    return str(error) or type(error).__name__


def request_bytes(action: HTTPGetAction, port: int) -> bytes:
    path = action.path if action.path.startswith("/") else "/" + action.path
    headers = {"Host": f"{action.host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*"}
    headers.update({header.name: header.value for header in action.http_headers})
    headers["Connection"] = "close"
    lines = [f"GET {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def status_code(line: bytes) -> int | None:
    """The code of an HTTP/1.x status line (None if it is not one)."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return None
    return int(parts[1])


async def tcp_connect(host: str, port: int, limit_seconds: float) -> CheckResult:
    target = f"{host}:{port}"
    try:
        async with asyncio.timeout(limit_seconds):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return CheckResult(False, f"tcp {target}: timeout after {limit_seconds:g}s")
    except OSError as error:
        return CheckResult(False, f"tcp {target}: {describe(error)}")
    writer.close()  # not awaited: the transport finishes closing on its own
    return CheckResult(True, f"tcp {target}: connected")


async def http_get(action: HTTPGetAction, port: int, limit_seconds: float) -> CheckResult:
    path = action.path if action.path.startswith("/") else "/" + action.path
    url = f"http://{action.host}:{port}{path}"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(limit_seconds):
            reader, writer = await asyncio.open_connection(action.host, port, limit=MAX_STATUS_LINE)
            writer.write(request_bytes(action, port))
            line = await reader.readline()
    except TimeoutError:
        return CheckResult(False, f"GET {url}: timeout after {limit_seconds:g}s")
    except (OSError, ValueError) as error:  # refused, reset, a status line past the limit
        return CheckResult(False, f"GET {url}: {describe(error)}")
    finally:
        if writer is not None:
            writer.close()  # not awaited: the transport finishes closing on its own
    code = status_code(line)
    if code is None:
        return CheckResult(False, f"GET {url}: not an HTTP answer: {line[:80]!r}")
    if 200 <= code < 400:
        return CheckResult(True, f"GET {url}: {code}")
    return CheckResult(False, f"GET {url}: HTTP {code}")
