"""Open-loop load at a constant rate (like wrk2 -R), for latency figures "under load".

A closed loop (N connections, each sending its next request when the last answer came: wrk,
`loadgen.HttpLoad`) slows down when the server does, so a stall delays the requests that would
have been sent during it instead of showing in their latencies ("coordinated omission"), and run
as fast as it can it keeps the machine saturated, where any extra runnable task lands straight
in the tail. A latency objective is stated at a given request rate, so here request i is due at
start + i / rate whatever happened to the earlier ones, and its latency counts from that due
time: a stall shows as the delay of every request scheduled during it.

Called by bench/sandbox_neighbour.py (a neighbour pod's p99 beside a noisy pod); `capacity`
finds the closed-loop request rate the open-loop rate is set against.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from loadgen import HttpLoad, RawConnection


@dataclass
class RateFigures:
    """Latencies (s, from each request's due time) and failures of one run."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Requests sent more than one interval after their due time because every client was
    # busy (their wait still counts in their latency).
    queued: int = 0


class ConstantRate:
    """GET `path` on 127.0.0.1:`port` at `rate` requests/s for a given time, open loop.

    `connections` keep-alive clients (opened before the clock starts) take the due times in
    turn: a client sleeps until the next unclaimed due time, sends, and claims the next one when
    answered. When every client is busy past a due time, that request is sent late and the wait
    counts in its latency, as it would for a caller whose requests queue (wrk2's model; a pool,
    not a task per request, so the generator's own CPU stays small beside the system's).
    """

    def __init__(
        self,
        port: int,
        rate: float,
        *,
        path: str = "/version",
        connections: int = 16,
        timeout: float = 10.0,
    ) -> None:
        self.url, self.rate, self.path = f"http://127.0.0.1:{port}", rate, path
        self.connections, self.timeout = connections, timeout

    def run(self, seconds: float) -> RateFigures:
        return asyncio.run(self._run(seconds))

    async def _run(self, seconds: float) -> RateFigures:
        figures = RateFigures()
        opened = [await RawConnection.open(self.url) for _ in range(self.connections)]
        start = time.monotonic()
        schedule = iter(range(int(seconds * self.rate)))
        await asyncio.gather(
            *(self._client(c, start, schedule, figures) for c in opened),
            return_exceptions=True,
        )
        return figures

    async def _client(
        self,
        connection: RawConnection | None,
        start: float,
        schedule: Iterator[int],
        figures: RateFigures,
    ) -> None:
        interval = 1.0 / self.rate
        for index in schedule:
            due = start + index * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > interval:
                figures.queued += 1
            try:
                if connection is None:
                    connection = await asyncio.wait_for(RawConnection.open(self.url), 5)
                status, _ = await asyncio.wait_for(
                    connection.request("GET", self.path), self.timeout
                )
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as error:
                figures.failures.append(type(error).__name__)
                if connection is not None:
                    connection.close()
                    connection = None
                continue
            figures.latencies.append(time.monotonic() - due)
            if status != 200:
                figures.failures.append(f"HTTP {status}")
        if connection is not None:
            connection.close()


class ClosedLoop:
    """`connections` clients each sending the next GET as soon as the last answer came (wrk's
    model; `loadgen.HttpLoad` unpaced): it saturates the path under test. Latency is from each
    request's send."""

    def __init__(self, port: int, *, connections: int = 16, path: str = "/version") -> None:
        self.port, self.connections, self.path = port, connections, path

    def run(self, seconds: float) -> RateFigures:
        return asyncio.run(self._run(seconds))

    async def _run(self, seconds: float) -> RateFigures:
        load = HttpLoad(self.port, connections=self.connections, path=self.path)
        load.start()
        await asyncio.sleep(seconds)
        figures = await load.stop()
        failures = [f"HTTP {code}" for code, n in figures.statuses.items() for _ in range(n)]
        failures += [name for name, n in figures.errors.items() for _ in range(n)]
        return RateFigures(latencies=figures.latencies, failures=failures)


def capacity(port: int, *, seconds: float = 3.0, connections: int = 16) -> float:
    """Requests/s the path answers under a saturating closed loop (this load generator
    included: it shares the machine, as it does in the measured windows)."""
    figures = ClosedLoop(port, connections=connections).run(seconds)
    return len(figures.latencies) / seconds
