"""The controller runner: workers that take keys from a `WorkQueue` and call a reconciler.

A reconciler is `async (key) -> Result | None` (controller-runtime's Reconcile): it reads
desired and observed state from informer caches, calls a pure `reconcile(...) -> Plan` and
applies the plan through the client. The runner turns its outcome into queue operations:
- success: the key's backoff is forgotten; `Result(requeue_after=s)` re-adds it after s seconds;
- `TerminalError`: logged, not retried (only a new event on the object brings it back);
- any other exception: re-added after the key's exponential backoff.

Used by every controller in `shoal.controllers.manager`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shoal.controllers.clock import Clock, SystemClock
from shoal.controllers.queue import Key, WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Result:
    requeue_after: float | None = None


class TerminalError(Exception):
    """A failure that retrying cannot fix (an invalid object): do not requeue."""


Reconciler = Callable[[Key], Awaitable[Result | None]]


class Controller:
    def __init__(
        self,
        name: str,
        reconcile: Reconciler,
        *,
        clock: Clock | None = None,
        workers: int = 4,
        base_delay: float = 0.05,
        max_delay: float = 30.0,
    ) -> None:
        self.name = name
        self.clock: Clock = clock or SystemClock()
        self.queue = WorkQueue(self.clock, base_delay=base_delay, max_delay=max_delay)
        self._reconcile = reconcile
        self._workers = workers

    def enqueue(self, key: Key) -> None:
        self.queue.add(key)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the workers until `stop` is set."""
        tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        try:
            await stop.wait()
        finally:
            self.queue.shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: Key) -> None:
        """Reconcile one key and schedule what follows (exposed for tests)."""
        try:
            result = await self._reconcile(key)
        except asyncio.CancelledError:
            raise
        except TerminalError as error:
            self.queue.forget(key)
            log.warning("%s: %s: not retried: %s", self.name, "/".join(key), error)
            return
        except Exception as error:
            delay = self.queue.backoff(key)
            log.info(
                "%s: %s: %s; retry in %.2fs",
                self.name,
                "/".join(key),
                error.__class__.__name__ + ": " + str(error),
                delay,
            )
            self.queue.add_after(key, delay)
            return
        self.queue.forget(key)
        if result is not None and result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after)
