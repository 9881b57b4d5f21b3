"""The node agent's own small HTTP API: pod logs and resource usage, for the API server to proxy,
and its Envoy's per-version request statistics, for the `envoy` analysis provider.

Started by the agent runner (`AgentHttp.start()` before the Node is registered, so that
`Node.status.agentPort` always names a listening port) on the node's address; the API server's
`shoal.server.pods_routes` forwards `shoal logs` and `shoal top` to it, so they work the same
for an agent on another machine as for the embedded one.

    GET /healthz                                  "ok"
    GET /pods/{namespace}/{name}/log              ?follow=&previous=&tailLines=&uid=
        text/plain; with follow=true the answer streams new lines (across restarts) until the
        client goes away, the pod is gone or finished, or the agent stops.
    GET /usage                                    ?namespace=
        {"kind": "NodeUsage", "node", "windowSeconds", "cpus", "cpuMillis", "memoryBytes",
         "memoryTotalBytes", "pods": [{"namespace", "name", "uid", "driver", "cpuMillis",
         "cpuSeconds", "memoryBytes", "pids"}]}
    GET /envoy/stats                              ?cluster=<namespace>.<service>.<hash> (1-64)
        {"kind": "EnvoyClusterStats", "node", "clusters": {name: {"2xx", "3xx", "4xx", "5xx",
         "buckets": [[upperBoundMs, cumulativeCount], ...]}}}: the answer counters and latency
        histogram of the named clusters, read from this node's Envoy admin API. That API
        listens on 127.0.0.1 only (it can also reconfigure and stop Envoy), so the analysis
        controller reads through this endpoint, which asks admin one fixed, read-only question
        (`shoal.analysis.envoy_stats.stat_filter`) and is no proxy to anything else there.
Errors are Status bodies, as the API server's, so the proxy can pass them on unchanged.

Usage is read by `shoal.agent.usage` (cgroup counters for sandboxed pods, psutil over the
process group for plain ones); logs by `shoal.agent.logs` (tail, follow).

Why FastAPI + uvicorn rather than a hand-written asyncio server: both are dependencies already
(the API server runs on them, in its event loop, the same way: see `shoal.server.serve`);
uvicorn handles keep-alive, chunked streaming and client disconnects (Starlette cancels a
streaming answer when its client leaves, which ends a followed log), and a minimal server would
be a hundred lines of HTTP parsing that nobody else reviews. `shoal server` loads them anyway;
a standalone `shoal agent` pays their import once at start.

Security: anyone who can reach the port reads pod logs and the request counts of Services. The
agent binds its node address (127.0.0.1 by default); on a network address, firewall the port to
the API server's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import uvicorn
from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from shoal.agent.drivers.base import Driver
from shoal.agent.logs import PodLogs, follow, tail_lines
from shoal.agent.ports import can_bind
from shoal.agent.records import PodRecords
from shoal.agent.usage import UsageSampler, read_usage, usage_document
from shoal.analysis.envoy_stats import admin_params, check_clusters, parse_stats
from shoal.api.errors import ApiError, BadRequest, Invalid, NotFound, Unavailable
from shoal.api.pod import Pod

log = logging.getLogger(__name__)

SETTINGS_FILE = "agent-http.json"
FOLLOW_POLL_SECONDS = 0.2
FOLLOW_CHECK_SECONDS = 1.0
CHUNK_BYTES = 64 * 1024
TEXT = "text/plain; charset=utf-8"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
# A followed log is the only long answer; shutdown ends it within FOLLOW_CHECK_SECONDS.
SHUTDOWN_GRACE_SECONDS = 2
ADMIN_TIMEOUT_SECONDS = 2.0


# -- logs -----------------------------------------------------------------------------------------
def _file_chunks(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        with contextlib.suppress(FileNotFoundError), path.open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                yield chunk


def _lines_text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode() if lines else b""


def log_snapshot(logs: PodLogs, previous: bool, tail: int | None) -> Iterator[bytes]:
    """What a non-followed request answers: the run's files, or their last `tail` lines."""
    segments = logs.segments(previous=previous)
    if tail is None:
        yield from _file_chunks(segments)
    else:
        yield _lines_text(tail_lines(segments, tail))


def follow_start(logs: PodLogs, tail: int | None) -> tuple[list[bytes], int | None]:
    """The backlog of a followed log and the byte of `current.log` where following goes on.

    `current.log` is read once up to its last complete line, and following continues at exactly
    that byte: no line is lost or repeated between the backlog and what follows."""
    rotated = [path for path in logs.segments() if path != logs.current]
    try:
        data = logs.current.read_bytes()
    except FileNotFoundError:
        data = None
    offset = None if data is None else data.rfind(b"\n") + 1
    complete = b"" if data is None or offset is None else data[:offset]
    if tail is None:
        return [*_file_chunks(rotated), complete], offset
    lines = complete.decode(errors="replace").split("\n")[:-1] if complete else []
    if len(lines) < tail:
        lines = tail_lines(rotated, tail - len(lines)) + lines
    return [_lines_text(lines[-tail:] if tail else [])], offset


# -- the app --------------------------------------------------------------------------------------
@dataclass
class AgentView:
    """What the HTTP API needs from the agent (the runner passes its own; tests pass fakes).

    `find_pod(namespace, name)` answers pods bound to this node, from the agent's cache."""

    node_name: str
    logs_root: Path
    find_pod: Callable[[str, str], Pod | None]
    sampler: UsageSampler
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    envoy_admin_port: int | None = None  # None: this node runs no Envoy


def _status(error: ApiError) -> JSONResponse:
    return JSONResponse(error.to_status(), status_code=error.code)


async def _invalid(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = "; ".join(f"{item['loc'][-1]}: {item['msg']}" for item in error.errors())
    return _status(Invalid(f"invalid parameters: {problems}"))


def create_agent_app(view: AgentView) -> FastAPI:
    app = FastAPI(title="shoal agent", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(RequestValidationError, _invalid)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response("ok", media_type=TEXT)

    @app.get("/usage")
    async def usage(namespace: str | None = None) -> Response:
        earlier, now = await view.sampler.measure()
        return JSONResponse(usage_document(view.node_name, earlier, now, namespace))

    @app.get("/envoy/stats")
    async def envoy_stats(cluster: Annotated[list[str] | None, Query()] = None) -> Response:
        try:
            clusters = check_clusters(cluster or [])
        except ValueError as error:
            return _status(BadRequest(str(error)))
        if view.envoy_admin_port is None:
            return _status(Unavailable(f"node {view.node_name} runs no Envoy"))
        try:
            body = await _admin_stats(view.envoy_admin_port, clusters)
        except (httpx.HTTPError, ValueError) as error:
            return _status(
                Unavailable(f"Envoy on node {view.node_name}: {type(error).__name__}: {error}")
            )
        document = {
            "kind": "EnvoyClusterStats",
            "node": view.node_name,
            "clusters": parse_stats(clusters, body),
        }
        return JSONResponse(document)

    @app.get("/pods/{namespace}/{name}/log")
    async def pod_log(
        namespace: str,
        name: str,
        *,
        follow_log: bool = Query(False, alias="follow"),
        previous: bool = False,
        tail: int | None = Query(None, alias="tailLines", ge=0),
        uid: str | None = None,
    ) -> Response:
        if not all(map(SAFE_NAME.fullmatch, (namespace, name, uid or "x"))):
            # They become a directory name: nothing that could climb out of the logs root.
            return _status(BadRequest("namespace, name and uid must be plain names"))
        pod = view.find_pod(namespace, name)
        known = uid or (pod.metadata.uid if pod is not None else None)
        if not known:
            return _status(NotFound(f"pod {namespace}/{name} is not on node {view.node_name}"))
        logs = PodLogs.for_pod(view.logs_root, namespace, name, known)
        if previous:
            if not logs.segments(previous=True):
                return _status(NotFound(f"no previous run of pod {name}: it has not restarted"))
            return StreamingResponse(log_snapshot(logs, True, tail), media_type=TEXT)
        if not follow_log:
            return StreamingResponse(log_snapshot(logs, False, tail), media_type=TEXT)

        def still_there() -> bool:
            current = view.find_pod(namespace, name)
            if current is not None and current.metadata.uid == known:
                return current.status.phase not in ("Succeeded", "Failed")
            return logs.directory.exists()

        return StreamingResponse(_follow(view, logs, tail, still_there), media_type=TEXT)

    return app


async def _admin_stats(admin_port: int, clusters: list[str]) -> dict[str, object]:
    """The admin API's JSON stats of `clusters`; httpx.HTTPError when Envoy does not answer."""
    async with httpx.AsyncClient(timeout=ADMIN_TIMEOUT_SECONDS) as http:
        response = await http.get(
            f"http://127.0.0.1:{admin_port}/stats", params=admin_params(clusters)
        )
        response.raise_for_status()
        body = response.json()
    if not isinstance(body, dict):
        raise ValueError("the admin API answered something else than a JSON object")
    return body


async def _follow(
    view: AgentView, logs: PodLogs, tail: int | None, still_there: Callable[[], bool]
) -> AsyncIterator[bytes]:
    backlog, offset = follow_start(logs, tail)
    for chunk in backlog:
        if chunk:
            yield chunk
    lines: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)

    async def pump() -> None:
        async for line in follow(logs, poll_seconds=FOLLOW_POLL_SECONDS, start_offset=offset):
            await lines.put(line)

    pumping = asyncio.create_task(pump())
    try:
        while not view.closing.is_set():
            try:
                first = await asyncio.wait_for(lines.get(), FOLLOW_CHECK_SECONDS)
            except TimeoutError:
                if not still_there():
                    return
                continue
            batch = [first]
            while not lines.empty() and len(batch) < 1000:
                batch.append(lines.get_nowait())
            yield _lines_text(batch)
    finally:
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)


# -- the server -----------------------------------------------------------------------------------
def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def http_port(data_dir: Path, host: str) -> int:
    """The port this agent serves on: the persisted one while it is free, else a new one."""
    path = data_dir / SETTINGS_FILE
    try:
        port = int(json.loads(path.read_text())["port"])
        if can_bind(host, port):
            return port
    except (OSError, ValueError, KeyError, TypeError):
        pass
    port = _free_port(host)
    path.write_text(json.dumps({"port": port}))
    return port


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the agent's process owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AgentHttp:
    """The API served in the agent's event loop. `port` is known before `start()`."""

    def __init__(self, view: AgentView, *, host: str, data_dir: Path) -> None:
        self.view = view
        self.host = host
        self.data_dir = data_dir
        self.port = http_port(data_dir, host)
        self._server: _EmbeddedServer | None = None
        self._serving: asyncio.Future[None] | None = None

    @classmethod
    def for_agent(
        cls,
        *,
        node_name: str,
        data_dir: Path,
        address: str,
        pods: Callable[[str, str], Pod | None],
        records: PodRecords,
        drivers: Mapping[str, Driver],
        envoy_admin_port: int | None = None,
    ) -> AgentHttp:
        def find_pod(namespace: str, name: str) -> Pod | None:
            pod = pods(namespace, name)
            return pod if pod is not None and pod.spec.node_name == node_name else None

        sampler = UsageSampler(lambda: asyncio.to_thread(read_usage, records, drivers))
        view = AgentView(node_name, data_dir / "logs", find_pod, sampler)
        view.envoy_admin_port = envoy_admin_port
        return cls(view, host=address, data_dir=data_dir)

    def _bind(self) -> socket.socket:
        """Bind here rather than in uvicorn, which answers a bind error with sys.exit (and a
        SystemExit escapes the event loop); a persisted port taken meanwhile gives way to a
        fresh one, persisted in its turn."""
        for port in (self.port, 0):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
            except OSError:
                sock.close()
                if port == 0:
                    raise
                continue
            sock.listen(128)
            sock.setblocking(False)
            if port == 0:
                self.port = int(sock.getsockname()[1])
                (self.data_dir / SETTINGS_FILE).write_text(json.dumps({"port": self.port}))
            return sock
        raise AssertionError("unreachable")

    async def start(self) -> None:
        """Listen; returns once the socket accepts connections."""
        sock = self._bind()
        config = uvicorn.Config(
            create_agent_app(self.view),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        server = _EmbeddedServer(config)
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            if serving.done():
                sock.close()
                await serving
                raise OSError(f"the agent API stopped before listening on port {self.port}")
            await asyncio.sleep(0.01)
        self._server, self._serving = server, serving
        log.info("agent API on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        self.view.closing.set()
        if self._server is None or self._serving is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._serving
        self._server = self._serving = None


__all__ = [
    "AgentHttp",
    "AgentView",
    "create_agent_app",
    "follow_start",
    "http_port",
    "log_snapshot",
]
