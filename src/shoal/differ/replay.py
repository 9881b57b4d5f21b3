"""Replays mirrored requests and feeds the answers to the aggregator.

`Replayer.offer(request)` is called by the receiver for each mirrored request and never
blocks: a request whose method is not compared is skipped; one beyond `max_rate` samples per
second (a token bucket holding one second's worth) or arriving when the bounded queue is full
is dropped and counted (`max_rate` bounds the CPU the comparison takes whatever the live
traffic: a gate needs hundreds of samples, not every request). Under overload the differ
sheds samples: it never grows without bound and never slows Envoy, which got its 202
already. `concurrency` workers take
requests from the queue; each sends the same bytes to a primary, a second primary and a
candidate at once (instances taken round-robin; with a single primary instance it answers
twice, which still exposes per-response randomness), then records the sample. So at most
`concurrency` samples (3 x `concurrency` requests) are ever in flight towards the instances
and at most `queue_size` wait: the differ's load on them is bounded whatever Envoy sends.
Each replay goes to the same app port (by name) the mirror came in on (`MirroredRequest.port`);
an instance without that port makes the sample skipped.

Replays carry `x-shoal-shadow: 1` so that services can skip side effects, keep the original
Host (Envoy's `-shadow` suffix removed) and drop hop-by-hop headers; Envoy's
`x-envoy-*` request headers are dropped too (they describe the mirrored hop, not the request).

Called by `shoal.differ.main`; also driven directly by the benchmark and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from shoal.differ.aggregate import Aggregator, Sample
from shoal.differ.compare import Headers
from shoal.differ.endpoints import endpoint_key
from shoal.differ.http import Address, MirroredRequest, UpstreamPool, encode_request
from shoal.differ.targets import Targets, address_of, all_addresses

SHADOW_HEADER = "x-shoal-shadow"
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        SHADOW_HEADER,
    }
)


def replay_headers(headers: Headers) -> Headers:
    """The headers every replay of a mirrored request carries."""
    kept = tuple(
        (name, value)
        for name, value in headers
        if name not in _NOT_FORWARDED and not name.startswith("x-envoy-")
    )
    return (*kept, (SHADOW_HEADER, "1"))


class Replayer:
    def __init__(
        self,
        aggregator: Aggregator,
        pool: UpstreamPool,
        *,
        methods: Iterable[str] = ("GET", "HEAD"),
        concurrency: int = 32,
        queue_size: int = 1000,
        max_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.aggregator = aggregator
        self.pool = pool
        self.methods = frozenset(m.upper() for m in methods)
        self.concurrency = concurrency
        self.queue: asyncio.Queue[MirroredRequest] = asyncio.Queue(queue_size)
        self.targets = Targets()
        self.received = 0
        self.replayed = 0
        self._turn = 0
        self._workers: list[asyncio.Task[None]] = []
        self.max_rate = max_rate
        self.clock = clock
        self._tokens = max(1.0, max_rate or 0.0)
        self._filled_at = clock()

    def _take_token(self) -> bool:
        """A token of the `max_rate` bucket (always, without a rate)."""
        if self.max_rate is None:
            return True
        now = self.clock()
        burst = max(1.0, self.max_rate)
        self._tokens = min(burst, self._tokens + (now - self._filled_at) * self.max_rate)
        self._filled_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def set_targets(self, targets: Targets) -> None:
        self.targets = targets
        self.pool.forget(all_addresses(targets.primaries) | all_addresses(targets.candidates))

    def set_methods(self, methods: Iterable[str]) -> None:
        self.methods = frozenset(m.upper() for m in methods)

    def offer(self, request: MirroredRequest) -> None:
        """Queue a mirrored request, or count it as skipped or dropped. Never blocks."""
        self.received += 1
        if request.method not in self.methods or request.truncated:
            self.aggregator.record_skipped()
            return
        if not self._take_token():
            self.aggregator.record_dropped()
            return
        try:
            self.queue.put_nowait(request)
        except asyncio.QueueFull:
            self.aggregator.record_dropped()

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"differ-replay-{number}")
            for number in range(self.concurrency)
        ]

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []

    async def _work(self) -> None:
        while True:
            request = await self.queue.get()
            await self.replay(request)

    def _pick(self, port: str | None) -> tuple[Address, Address, Address] | None:
        """The primary, second primary and candidate addresses for a mirror of app port `port`
        (round-robin); None without instances or when one of the three lacks that port."""
        primaries, candidates = self.targets.primaries, self.targets.candidates
        if not primaries or not candidates:
            return None
        turn = self._turn
        self._turn += 1
        primary = address_of(primaries[turn % len(primaries)], port)
        secondary = address_of(primaries[(turn + 1) % len(primaries)], port)
        candidate = address_of(candidates[turn % len(candidates)], port)
        if primary is None or secondary is None or candidate is None:
            return None
        return primary, secondary, candidate

    async def replay(self, request: MirroredRequest) -> None:
        """Send one request to the three instances and record the sample."""
        addresses = self._pick(request.port)
        if addresses is None:
            self.aggregator.record_skipped()
            return
        data = encode_request(
            request.method, request.target, replay_headers(request.headers), request.body
        )
        head = request.method == "HEAD"
        primary, secondary, candidate = await asyncio.gather(
            *(self.pool.send(address, data, head) for address in addresses)
        )
        self.replayed += 1
        self.aggregator.record(
            Sample(
                endpoint_key(request.method, request.target),
                f"{request.method} {request.target}",
                primary,
                secondary,
                candidate,
            )
        )
