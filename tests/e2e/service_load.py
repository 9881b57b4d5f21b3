"""Keep-alive HTTP load through a Service port for the zero-downtime e2e tests and benchmarks:
client threads (http.client, one connection each, a new one after an error) send requests in a
loop, and every request is timed and recorded — a failure is any status but 200 or any
connection error — with the version that answered (the `x-version` header of the probe app).

Started and stopped by `agent_harness.under_load`; tests read the samples and errors.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Sample:
    started: float
    ok: bool
    version: str


@dataclass
class Load:
    """Keep-alive clients (threads) sending requests through a Service port, each one timed
    and recorded: a failure is any status but 200 or any connection error."""

    port: int
    clients: int = 8
    path: str = "/slow?ms=5"
    post_every: int = 0  # every n-th request of a client is a POST (0: GETs only)
    samples: list[list[Sample]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for index in range(self.clients):
            mine: list[Sample] = []
            self.samples.append(mine)
            thread = threading.Thread(target=self._client, args=(index, mine), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _client(self, index: int, mine: list[Sample]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        count = index
        while not self._stop.is_set():
            count += 1
            post = self.post_every > 0 and count % self.post_every == 0
            started = time.monotonic()
            try:
                connection.request(
                    "POST" if post else "GET", self.path, body=b"x" if post else None
                )
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                mine.append(Sample(started, ok, response.getheader("x-version") or ""))
                if not ok:
                    self._error(f"{'POST' if post else 'GET'} -> {response.status}")
            except (OSError, http.client.HTTPException) as error:
                mine.append(Sample(started, False, ""))
                self._error(f"{'POST' if post else 'GET'} -> {error!r}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.close()

    def _error(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)

    def all(self, since: float = 0.0) -> list[Sample]:
        return [s for mine in self.samples for s in list(mine) if s.started >= since]

    @property
    def total(self) -> int:
        return sum(len(mine) for mine in self.samples)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.all() if not s.ok)

    def versions(self, since: float) -> set[str]:
        return {s.version for s in self.all(since) if s.ok}
