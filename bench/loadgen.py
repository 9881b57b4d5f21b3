"""Load generation shared by the benchmarks (bench/) and the reliability suite (chaos/).

`RawConnection` is a minimal HTTP/1.1 keep-alive client (like wrk): httpx costs the load
process several ms of CPU per request on a 2-core machine, more than the server under test
spends, so measuring through it would measure httpx. `HttpLoad` runs N such connections in a
closed loop against one port (optionally paced) and counts every answer and every connection
error, with timestamps, so a fault scenario can say exactly what failed and when.

Bench scripts run as `python bench/bench_x.py` and import this as `loadgen`; the chaos suite
runs from the repository root and imports it as `bench.loadgen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class RawConnection:
    """One keep-alive HTTP/1.1 connection; requests are sent one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def post(self, path: str, payload: dict[str, Any]) -> tuple[int, bytes]:
        return await self.request("POST", path, json.dumps(payload).encode())

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        status = int(headers.split(b" ", 2)[1])
        length = 0
        for header in headers.split(b"\r\n")[1:]:
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def watch_lines(self, path: str) -> AsyncIterator[tuple[float, bytes]]:
        """GET a watch stream; yields (arrival time, line) from the chunked body."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        headers = await self.reader.readuntil(b"\r\n\r\n")
        if int(headers.split(b" ", 2)[1]) != 200:
            raise RuntimeError(f"watch failed: {headers!r}")
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                return
            data = await self.reader.readexactly(size + 2)
            arrived = time.perf_counter()
            for line in data[:-2].splitlines():
                if line.strip():
                    yield arrived, line

    def close(self) -> None:
        self.writer.close()


@dataclass
class LoadFigures:
    """What a load run saw. Times are `time.monotonic()` values."""

    ok: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    failure_times: list[float] = field(default_factory=list)
    # When each request was sent, by outcome: "what was asked after moment T" is a fairer
    # cut than "what was answered after T" (answers to older requests arrive late).
    sent_ok: list[float] = field(default_factory=list)
    sent_failed: list[float] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ok + self.failed

    def success_share(self) -> float:
        return self.ok / self.total if self.total else 1.0

    def failed_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.failure_times if start <= t <= end)

    def sent_after(self, moment: float) -> tuple[int, int]:
        """(succeeded, failed) among the requests sent after `moment`."""
        ok = sum(1 for t in self.sent_ok if t > moment)
        return ok, sum(1 for t in self.sent_failed if t > moment)

    def describe(self) -> str:
        what = ", ".join(
            [f"HTTP {code}: {n}" for code, n in sorted(self.statuses.items()) if code >= 300]
            + [f"{name}: {n}" for name, n in self.errors.most_common()]
        )
        return f"{self.total:,} requests, {self.failed} failed" + (f" ({what})" if what else "")


class HttpLoad:
    """`connections` keep-alive clients sending `method` `path` to 127.0.0.1:`port` until
    stopped (a POST carries a small JSON body; Envoy does not retry a reset POST).

    A non-2xx answer or a connection error counts as one failed request (the client then
    reconnects). `rate` caps the total requests per second (None: as fast as answers come),
    so the load leaves CPU to the system under test on a small machine. The version of each
    answer is read from a JSON body's "version" field when present.
    """

    def __init__(
        self,
        port: int,
        *,
        connections: int = 8,
        path: str = "/",
        method: str = "GET",
        rate: float | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.connections, self.path, self.rate, self.timeout = connections, path, rate, timeout
        self.method = method
        self.body = b'{"chaos": true}' if method == "POST" else b""
        self.figures = LoadFigures()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.connections)]

    async def stop(self) -> LoadFigures:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return self.figures

    def _fail(self, reason: str | int, sent: float) -> None:
        self.figures.failed += 1
        self.figures.failure_times.append(time.monotonic())
        self.figures.sent_failed.append(sent)
        if isinstance(reason, int):
            self.figures.statuses[reason] += 1
        else:
            self.figures.errors[reason] += 1

    async def _client(self) -> None:
        interval = self.connections / self.rate if self.rate else 0.0
        connection: RawConnection | None = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    next_at = time.monotonic()  # behind: do not burst to catch up
            started = time.monotonic()
            try:
                if connection is None:
                    connection = await asyncio.wait_for(RawConnection.open(self.url), 5)
                status, body = await asyncio.wait_for(
                    connection.request(self.method, self.path, self.body), self.timeout
                )
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as error:
                self._fail(type(error).__name__, started)
                if connection is not None:
                    connection.close()
                    connection = None
                if not interval:
                    await asyncio.sleep(0.01)  # a refused connect must not spin
                continue
            self.figures.latencies.append(time.monotonic() - started)
            if 200 <= status < 300:
                self.figures.ok += 1
                self.figures.sent_ok.append(started)
                with contextlib.suppress(ValueError, AttributeError):
                    self.figures.versions[str(json.loads(body).get("version"))] += 1
            else:
                self._fail(status, started)
        if connection is not None:
            connection.close()
