"""In-process HTTP upstreams for the differ's tests (imported by the test modules here).

`StubUpstream` is a deliberately plain asyncio-streams HTTP/1.1 server, independent of the
differ's own protocol code, so that tests exercise the differ against a second implementation.
Its `answer(method, target, headers, body)` decides each response; it records every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Answer = tuple[int, list[tuple[str, str]], bytes]


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


def json_answer(body: Any, status: int = 200, *extra: tuple[str, str]) -> Answer:
    return status, [("content-type", "application/json"), *extra], json.dumps(body).encode()


@dataclass
class StubUpstream:
    answer: Callable[[str, str, dict[str, str], bytes], Answer]
    chunked: bool = False
    close_after_each: bool = False
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> StubUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    async def drop_idle_connections(self) -> None:
        """Close every open connection (what an upstream's keep-alive timeout does)."""
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0.05)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.received.append(Received(method, target, headers, body))
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                status, answer_headers, answer_body = self.answer(method, target, headers, body)
                out = [f"HTTP/1.1 {status} X"] + [f"{n}: {v}" for n, v in answer_headers]
                if self.chunked:
                    out.append("transfer-encoding: chunked")
                    payload = b"".join(
                        f"{len(part):x}\r\n".encode() + part + b"\r\n"
                        for part in (answer_body[:5], answer_body[5:])
                        if part
                    )
                    payload += b"0\r\n\r\n"
                else:
                    out.append(f"content-length: {len(answer_body)}")
                    payload = b"" if method == "HEAD" else answer_body
                if self.close_after_each:
                    out.append("connection: close")
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
                await writer.drain()
                if self.close_after_each:
                    return
        finally:
            self._writers.discard(writer)
            writer.close()


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until `condition()` holds; fail after a generous `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
