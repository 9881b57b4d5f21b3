"""The differ's HTTP: a receiver for Envoy's mirrored requests and a keep-alive client for
the replays. Both are asyncio protocols over `httptools` (llhttp) parsing.

Why not uvicorn/httpx: a compared sample costs one received request and three upstream calls,
and the goal is 500 samples/s on one core, so about 2,000 HTTP exchanges per second plus the
comparison. httpx and an ASGI stack spend several hundred microseconds per exchange in Python;
a protocol with a C parser spends tens. What is here is only what the differ needs: HTTP/1.1,
keep-alive, content-length and chunked bodies (llhttp); no TLS, no HTTP/2, and the client sends
one request at a time per connection.

Receiver (`MirrorServer`): a mirrored copy, recognised by Envoy's `-shadow` Host suffix (added to
the host name, before any port: `shop-shadow:8080`) or by the `x-shoal-shadow: 1` header that
shoal's mirror policy adds, is answered `202` at once, before any replay, so Envoy's shadow
stream is done immediately; the request goes to `on_mirror` with the original Host. Any other
request is the differ's own small admin API, answered by `on_admin(method, path)`: `/healthz`,
`/stats`, `/report`.

Client (`UpstreamPool`): per address, a stack of idle keep-alive connections. A request on a
reused connection that the upstream had already closed is retried once on a new one (the
upstream never saw it); any other failure or the timeout gives `Reply(0, error=...)`, so a dead
instance never raises into the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httptools

from shoal.differ.compare import Headers, Reply

Address = tuple[str, int]
SHADOW_SUFFIX = "-shadow"
_ACCEPTED = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


@dataclass(frozen=True, slots=True)
class MirroredRequest:
    method: str
    target: str  # path and query, as received
    headers: Headers  # names lower-cased; host without the -shadow suffix
    body: bytes
    truncated: bool = False  # the body exceeded the receiver's limit and was not kept
    # The app port (by name) the mirror came in for: the differ listens once per port of the
    # app's template, and replays to the same port of the comparison instances. None: the
    # default port ($PORT).
    port: str | None = None


AdminAnswer = tuple[int, str, bytes]  # status, content type, body


def unshadowed_host(host: str) -> str | None:
    """The Host before Envoy's mirror rewrote it, or None if it is not a mirror's Host.
    Envoy inserts the suffix before a port: `shop:8080` becomes `shop-shadow:8080`."""
    name, colon, port = host.rpartition(":")
    if not (colon and port.isdigit()):
        name, colon, port = host, "", ""
    if not name.endswith(SHADOW_SUFFIX):
        return None
    return name[: -len(SHADOW_SUFFIX)] + colon + port


def _response(status: int, content_type: str, body: bytes, keep_alive: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\n"
        f"content-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        + ("" if keep_alive else "connection: close\r\n")
        + "\r\n"
    )
    return head.encode() + body


class _Receiver(asyncio.Protocol):
    """One client connection (Envoy's pool to the differ cluster, or an admin client)."""

    def __init__(self, server: MirrorServer, port_name: str | None) -> None:
        self.server = server
        self.port_name = port_name
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close(_BAD_REQUEST)
        except httptools.HttpParserError:
            self._close(_BAD_REQUEST)

    def _close(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    # llhttp callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body, self.size = b"", [], [], 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size <= self.server.max_body_bytes:
            self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method().decode("latin-1")
        target = self.url.decode("latin-1")
        host = next((value for name, value in self.headers if name == "host"), "")
        original = unshadowed_host(host)
        if original is not None or ("x-shoal-shadow", "1") in self.headers:
            self.transport.write(_ACCEPTED)
            original = host if original is None else original
            headers = tuple((n, original if n == "host" else v) for n, v in self.headers)
            truncated = self.size > self.server.max_body_bytes
            body = b"" if truncated else b"".join(self.body)
            self.server.on_mirror(
                MirroredRequest(method, target, headers, body, truncated, self.port_name)
            )
        else:
            status, content_type, answer = self.server.on_admin(method, target)
            self.transport.write(_response(status, content_type, answer, keep_alive))
        if not keep_alive:
            self.transport.close()


class MirrorServer:
    def __init__(
        self,
        on_mirror: Callable[[MirroredRequest], None],
        on_admin: Callable[[str, str], AdminAnswer],
        max_body_bytes: int = 1 << 20,
    ) -> None:
        self.on_mirror = on_mirror
        self.on_admin = on_admin
        self.max_body_bytes = max_body_bytes
        self._servers: list[asyncio.Server] = []

    async def start(self, host: str, port: int, port_name: str | None = None) -> int:
        """Listen (once per call: one listener per app port); mirrors received here are
        tagged with `port_name`. Returns the bound port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Receiver(self, port_name), host, port, backlog=512
        )
        self._servers.append(server)
        bound: int = server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)


class _Connection(asyncio.Protocol):
    """One keep-alive connection to an upstream; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Reply] | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.head = False
        self.received = False  # any byte of the current answer arrived
        self.headers_done = False
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.reusable = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and self.parser is not None and not self.body_expected():
            self._finish()  # an answer delimited by the end of the connection
        else:
            waiter.set_exception(ConnectionResetError("upstream closed the connection"))

    def body_expected(self) -> bool:
        names = {name for name, _ in self.headers}
        return "content-length" in names or "transfer-encoding" in names

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self.parser is None or self.waiter is None or self.waiter.done():
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.waiter.set_exception(ConnectionError(f"bad answer: {error}"))
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.head:  # a HEAD answer has no body, whatever content-length says
            self._finish()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self._finish()

    def _finish(self) -> None:
        assert self.parser is not None
        if self.waiter is None or self.waiter.done():
            return
        self.reusable = self.parser.should_keep_alive()
        status = self.parser.get_status_code()
        self.waiter.set_result(Reply(status, tuple(self.headers), b"".join(self.body)))

    def _expire(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(TimeoutError("no answer in time"))
        self.close()

    async def request(self, data: bytes, head: bool, timeout_s: float) -> Reply:
        assert self.transport is not None
        if self.closed:
            raise ConnectionResetError("connection already closed")
        loop = asyncio.get_running_loop()
        self.parser = httptools.HttpResponseParser(self)
        self.head, self.received, self.headers_done = head, False, False
        self.headers, self.body, self.reusable = [], [], False
        self.waiter = loop.create_future()
        timer = loop.call_later(timeout_s, self._expire)
        try:
            self.transport.write(data)
            return await self.waiter
        finally:
            timer.cancel()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    def __init__(self, timeout_s: float = 5.0, max_idle_per_address: int = 256) -> None:
        self.timeout_s = timeout_s
        self.max_idle_per_address = max_idle_per_address
        self._idle: dict[Address, list[_Connection]] = {}

    async def _open(self, address: Address) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await asyncio.wait_for(
            loop.create_connection(_Connection, address[0], address[1]), self.timeout_s
        )
        return connection

    async def send(self, address: Address, data: bytes, head: bool = False) -> Reply:
        """Send one encoded request; the answer, or `Reply(0, error=...)` when there is none."""
        for attempt in range(2):
            idle = self._idle.get(address)
            while idle and idle[-1].closed:  # closed by the upstream while idle
                idle.pop()
            reused = bool(idle)
            try:
                connection = idle.pop() if idle else await self._open(address)
            except (OSError, TimeoutError) as error:
                return Reply(0, error=_describe(error))
            try:
                reply = await connection.request(data, head, self.timeout_s)
            except (OSError, TimeoutError) as error:
                connection.close()
                if reused and attempt == 0 and not connection.received:
                    continue  # a keep-alive connection the upstream had closed: try a new one
                return Reply(0, error=_describe(error))
            if connection.reusable and not connection.closed:
                stack = self._idle.setdefault(address, [])
                if len(stack) < self.max_idle_per_address:
                    stack.append(connection)
                else:
                    connection.close()
            else:
                connection.close()
            return reply
        return Reply(0, error="connection closed")  # pragma: no cover - the loop returns

    def forget(self, keep: set[Address]) -> None:
        """Close idle connections to addresses no longer targeted (pods that went away)."""
        for address in [a for a in self._idle if a not in keep]:
            for connection in self._idle.pop(address):
                connection.close()

    async def close(self) -> None:
        self.forget(set())


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def encode_request(method: str, target: str, headers: Headers, body: bytes) -> bytes:
    """HTTP/1.1 request bytes; `headers` must not carry content-length/transfer-encoding."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS", "TRACE"):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
