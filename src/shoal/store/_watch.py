"""Watch fan-out shared by both stores: recent history in memory, live delivery to many
watchers, and the hand-over from replayed history to live events.

Called by the stores only, always on their event loop: `publish(change)` once a write is
committed (strictly in revision order), `watch(...)` to serve `Store.watch`, `close()`.

Hand-over, correct by construction. A watcher registers its live queue and reads the
published revision `top` in the same synchronous step (no `await` in between, and `publish`
runs on the same loop), so every change is either <= `top` (already published: it is in the
history) or > `top` (it will be offered to the queue). The watcher replays history in
(since, top], then drains the queue. No change can fall between the two and none appears
twice. Revisions are contiguous (every revision is exactly one change), so replay is a slice.

History comes from the in-memory ring when it reaches back to `since`; otherwise from
`read_history` (SqliteStore reads its SQLite history; changes <= `top` are committed before
they are published, so they are there unless compacted, in which case it raises Gone).

Slow watchers: each live queue is bounded (`queue_limit` changes). `publish` never waits:
when a watcher's queue is full, that watcher is cut off (its queue dropped) and its iteration
ends with `Gone`, exactly as if it had asked for a compacted revision: it re-lists and watches
again from the list's revision. Writers and other watchers are never slowed by it.

Queues hold shared, immutable `Change`s (JSON bytes); each watcher decodes its own copy as it
consumes, so the cost of copying is paid by the consumer, not by the publishing writer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import islice

from shoal.api.errors import Gone
from shoal.store._records import Change
from shoal.store.base import WatchEvent

FAIR_SHARE = 64
"""A watcher with a backlog yields to other tasks after this many events in a row: one busy
watcher must not hold the event loop (and writers' acknowledgements) for its whole backlog."""

HistoryReader = Callable[[int, int, str | None, str | None], Awaitable[list[Change]]]
"""read_history(since, until, kind, namespace): changes in (since, until], or raise Gone."""


class _Subscriber:
    """One watcher's bounded live queue."""

    __slots__ = (
        "closed",
        "kind",
        "limit",
        "namespace",
        "overflowed",
        "queue",
        "streak",
        "waiter",
    )

    def __init__(self, kind: str | None, namespace: str | None, limit: int) -> None:
        self.kind = kind
        self.namespace = namespace
        self.limit = limit
        self.queue: deque[Change] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.closed = False
        self.streak = 0  # events returned without waiting, since the last yield to the loop

    def offer(self, change: Change) -> None:
        if self.overflowed or self.closed:
            return
        if len(self.queue) >= self.limit:
            self.overflowed = True
            self.queue.clear()  # the watcher must re-list anyway; free the memory now
        else:
            self.queue.append(change)
        self.wake()

    async def take_turn(self) -> None:
        if self.streak >= FAIR_SHARE:
            self.streak = 0
            await asyncio.sleep(0)

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next(self) -> Change | None:
        """The next live change; None once the store closed; Gone once cut off."""
        await self.take_turn()
        while True:
            if self.overflowed:
                raise Gone(
                    f"watch fell more than {self.limit} events behind and was cut off: "
                    "re-list and watch again from the list's revision"
                )
            if self.closed:
                return None
            if self.queue:
                self.streak += 1
                return self.queue.popleft()
            self.streak = 0
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None


class WatchHub:
    """Published history (a ring of the most recent changes) plus live subscribers."""

    def __init__(
        self,
        revision: int,
        ring_size: int,
        queue_limit: int,
        recent: list[Change] | None = None,
        read_history: HistoryReader | None = None,
    ) -> None:
        self.revision = revision
        self._ring: deque[Change] = deque(recent or (), maxlen=ring_size)
        self._queue_limit = queue_limit
        self._read_history = read_history
        # Indexed by kind (None = all kinds) so a write only visits watchers that may want it.
        self._subscribers: dict[str | None, set[_Subscriber]] = {}
        self._closed = False

    @property
    def oldest_in_memory(self) -> int:
        """The smallest `since` the ring alone can serve."""
        return self._ring[0].revision - 1 if self._ring else self.revision

    @property
    def watcher_count(self) -> int:
        return sum(len(subs) for subs in self._subscribers.values())

    def publish(self, change: Change) -> None:
        if change.revision != self.revision + 1:
            raise RuntimeError(
                f"watch history out of order: got revision {change.revision} after {self.revision}"
            )
        self.revision = change.revision
        self._ring.append(change)
        for key in (change.kind, None):
            for subscriber in self._subscribers.get(key, ()):
                if subscriber.namespace is None or subscriber.namespace == change.namespace:
                    subscriber.offer(change)

    def close(self) -> None:
        self._closed = True
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.closed = True
                subscriber.queue.clear()
                subscriber.wake()

    async def watch(
        self, since: int, kind: str | None, namespace: str | None
    ) -> AsyncIterator[WatchEvent]:
        if self._closed:
            return
        subscriber = _Subscriber(kind, namespace, self._queue_limit)
        # From here to reading `top`: no await (see the module docstring).
        self._subscribers.setdefault(kind, set()).add(subscriber)
        try:
            top = self.revision
            replay = self._replay_from_memory(since, top, kind, namespace)
            if replay is None:
                if self._read_history is None:
                    raise Gone(
                        f"revision {since} is older than the kept history; the oldest "
                        f"revision a watch can start from is {self.oldest_in_memory}: "
                        "re-list and watch from the list's revision"
                    )
                replay = await self._read_history(since, top, kind, namespace)
            for change in replay:
                if subscriber.overflowed:
                    break  # next() raises Gone
                yield change.to_event()
                subscriber.streak += 1
                await subscriber.take_turn()
            while True:
                live = await subscriber.next()
                if live is None:
                    return
                if live.revision > since:  # `since` may lie ahead of `top`
                    yield live.to_event()
        finally:
            subscribers = self._subscribers.get(kind)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._subscribers[kind]

    def _replay_from_memory(
        self, since: int, top: int, kind: str | None, namespace: str | None
    ) -> list[Change] | None:
        """Changes in (since, top] from the ring, or None when the ring does not reach back."""
        oldest = self.oldest_in_memory
        if since < oldest:
            return None
        if since >= top:
            return []
        # Contiguous revisions: the change with revision since+1 sits at index since-oldest.
        recent = islice(self._ring, since - oldest, None)
        return [change for change in recent if change.matches(kind, namespace)]
