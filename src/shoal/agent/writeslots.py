"""How many of the agent's pod writes may be in flight at once, and who goes first.

Built once per agent (`AgentContext.write_slots`) and taken by every pod's `PodWrites` around
each API write. Without a bound, 500 crash-looping pods put hundreds of requests into the HTTP
client's pool at once: the pool's bookkeeping grows with the square of its queue, and the API
(in the same process as the embedded agent) answers everyone else behind that queue. With a few
slots the rest wait here, where each pod's pending changes coalesce into one write (see
podwrites), and a write that changes readiness is served before routine ones (crash-loop
bookkeeping), so routing and rollouts do not wait behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

DEFAULT_SLOTS = 2


class WriteSlots:
    """A semaphore of `limit` slots whose waiters are served urgent first, then in order."""

    def __init__(self, limit: int = DEFAULT_SLOTS) -> None:
        if limit < 1:
            raise ValueError(f"write slots: limit must be >= 1, got {limit}")
        self.limit = limit
        self.busy = 0
        self._order = itertools.count()
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []

    @property
    def waiting(self) -> int:
        return sum(1 for *_, future in self._waiting if not future.done())

    @contextlib.asynccontextmanager
    async def hold(self, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if self.busy < self.limit and not self.waiting:
            self.busy += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if urgent else 1, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # the slot was handed over just as we were cancelled
            raise

    def _release(self) -> None:
        """Hand the slot to the first live waiter (busy stays), or free it."""
        while self._waiting:
            *_, future = heapq.heappop(self._waiting)
            if not future.done():  # a cancelled waiter is skipped here, not searched for
                future.set_result(None)
                return
        self.busy -= 1
