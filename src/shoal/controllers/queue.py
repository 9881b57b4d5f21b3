"""A level-triggered work queue keyed by object, as in client-go's workqueue.

Keys are `(kind, namespace, name)`. Guarantees, which the runner relies on:
- a key waiting in the queue is there once, however often it is added (dedup);
- a key is handed to one worker at a time; added again while it is processed, it is queued
  again when that worker calls `done` (so the latest state is always reconciled);
- `add_after` re-adds a key after a delay (requeue-after, backoff);
- `backoff(key)` gives an exponential per-key delay that `forget(key)` resets.
"""

from __future__ import annotations

import asyncio
from collections import deque

from shoal.controllers.clock import Clock

Key = tuple[str, str, str]


class WorkQueue:
    def __init__(self, clock: Clock, *, base_delay: float = 0.05, max_delay: float = 60.0) -> None:
        self._clock = clock
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._queue: deque[Key] = deque()
        self._queued: set[Key] = set()
        self._processing: set[Key] = set()
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, tuple[float, asyncio.Task[None]]] = {}
        self._ready = asyncio.Condition()
        self._closed = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: Key) -> None:
        if self._closed:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._ready:
            self._ready.notify()

    def add_after(self, key: Key, delay: float) -> None:
        """Add `key` after `delay` seconds; an earlier pending timer for the key wins."""
        if delay <= 0:
            self.add(key)
            return
        due = self._clock.monotonic() + delay
        current = self._timers.get(key)
        if current is not None and current[0] <= due and not current[1].done():
            return
        if current is not None:
            current[1].cancel()
        task = asyncio.get_running_loop().create_task(self._fire(key, delay))
        self._timers[key] = (due, task)

    async def _fire(self, key: Key, delay: float) -> None:
        await self._clock.sleep(delay)
        self._timers.pop(key, None)
        self.add(key)

    def backoff(self, key: Key) -> float:
        """The next delay for a failing key: base * 2**failures, capped."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return float(min(self._max_delay, self._base_delay * (2**failures)))

    def failures(self, key: Key) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: Key) -> None:
        self._failures.pop(key, None)

    async def get(self) -> Key:
        """Wait for a key and mark it as being processed."""
        async with self._ready:
            await self._ready.wait_for(lambda: bool(self._queue) or self._closed)
            if not self._queue:
                raise asyncio.CancelledError
            key = self._queue.popleft()
            self._queued.discard(key)
            self._processing.add(key)
            return key

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def shutdown(self) -> None:
        self._closed = True
        for _, task in self._timers.values():
            task.cancel()
        self._timers.clear()
        asyncio.get_running_loop().create_task(self._wake_all())

    async def _wake_all(self) -> None:
        async with self._ready:
            self._ready.notify_all()
