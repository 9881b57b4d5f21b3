"""Watch streaming: store changes as newline-delimited JSON, one event per line.

Called by the list routes when `?watch=true`. The stream starts with the changes after
`resourceVersion` (or, when it is absent or 0, with an ADDED line per existing object, as
Kubernetes does), then follows live changes. Every ~5 s without traffic a BOOKMARK line
carries the last revision seen, so clients can resume from there and idle connections stay
alive. An expired revision answers HTTP 410 when the store says so at once, or an ERROR line
with the 410 Status once streaming.

With a label selector, a watcher sees an object as ADDED when it starts matching and as
DELETED when it stops matching (Kubernetes' behaviour). Which objects "match so far" is
seeded from a list taken when the watch starts, so after a resume an object that stopped
matching before that list is not reported again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field

import orjson

from shoal.api.errors import Gone
from shoal.api.selectors import LabelSelector
from shoal.store.base import Object, Store, WatchEvent, object_key

BOOKMARK_SECONDS = 5.0
# How long the server waits for the first event before it commits to a 200 answer; any
# store raises Gone well within it, and history or live events end the wait at once.
FIRST_EVENT_WAIT = 0.1

Key = tuple[str, str, str]


@dataclass(slots=True)
class SelectorFilter:
    """Per-watcher translation of store events through a label selector."""

    selector: LabelSelector
    matching: set[Key] = field(default_factory=set)

    def translate(self, event: WatchEvent) -> WatchEvent | None:
        key = object_key(event.object)
        labels = event.object.get("metadata", {}).get("labels") or {}
        was = key in self.matching
        if event.type == "DELETED":
            self.matching.discard(key)
            return event if was or self.selector.matches(labels) else None
        if self.selector.matches(labels):
            self.matching.add(key)
            return event if was else WatchEvent("ADDED", event.object, event.revision)
        if was:
            self.matching.discard(key)
            return WatchEvent("DELETED", event.object, event.revision)
        return None


def line(payload: Object) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_APPEND_NEWLINE)


class LineCache:
    """Encoded event lines by (revision, type), shared by the watchers of one app: with many
    watchers, encoding each event once instead of once per watcher is most of the work."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._lines: OrderedDict[tuple[int, str], bytes] = OrderedDict()

    def encode(self, event: WatchEvent) -> bytes:
        key = (event.revision, event.type)
        encoded = self._lines.get(key)
        if encoded is None:
            encoded = line(event.to_json())
            self._lines[key] = encoded
            if len(self._lines) > self.size:
                self._lines.popitem(last=False)
        return encoded


def bookmark(kind: str, revision: int) -> bytes:
    return line(
        {
            "type": "BOOKMARK",
            "object": {"kind": kind, "metadata": {"resourceVersion": str(revision)}},
        }
    )


@dataclass(slots=True)
class WatchStream:
    """One watcher's stream. `start()` may raise Gone (answered as HTTP 410 by the route);
    `body()` is the response body and cleans up the store iterator however it ends."""

    store: Store
    kind: str
    namespace: str | None
    since: int
    selector: LabelSelector | None
    lines: LineCache = field(default_factory=LineCache)
    initial: list[WatchEvent] = field(default_factory=list)
    _events: AsyncIterator[WatchEvent] | None = None
    _next: asyncio.Task[WatchEvent] | None = None
    _filter: SelectorFilter | None = None

    async def start(self) -> None:
        if self.selector is not None:
            self._filter = SelectorFilter(self.selector)
        if self.since <= 0:
            listed = await self.store.list(self.kind, self.namespace, self.selector)
            self.since = listed.revision
            self.initial = [WatchEvent("ADDED", obj, listed.revision) for obj in listed.items]
        elif self._filter is not None:
            listed = await self.store.list(self.kind, self.namespace, self.selector)
            self._filter.matching = {object_key(obj) for obj in listed.items}
        if self._filter is not None:
            self._filter.matching.update(object_key(e.object) for e in self.initial)
        self._events = aiter(self.store.watch(self.since, self.kind, self.namespace))
        self._schedule()
        done, _ = await asyncio.wait({self._pending()}, timeout=FIRST_EVENT_WAIT)
        if done and isinstance(self._pending().exception(), Gone):
            await self.close()
            raise Gone(
                f"resourceVersion {self.since} is too old; list again and watch "
                "from the list's resourceVersion"
            )

    def _schedule(self) -> None:
        assert self._events is not None
        self._next = asyncio.ensure_future(anext(self._events))

    def _pending(self) -> asyncio.Task[WatchEvent]:
        assert self._next is not None
        return self._next

    async def body(self) -> AsyncIterator[bytes]:
        try:
            for event in self.initial:
                yield line(event.to_json())
            last = self.since
            while True:
                task = self._pending()
                done, _ = await asyncio.wait({task}, timeout=BOOKMARK_SECONDS)
                if not done:
                    yield bookmark(self.kind, last)
                    continue
                try:
                    event = task.result()
                except StopAsyncIteration:
                    return
                except Gone as error:
                    yield line({"type": "ERROR", "object": error.to_status()})
                    return
                self._schedule()
                last = event.revision
                translated = self._filter.translate(event) if self._filter else event
                if translated is not None:
                    yield self.lines.encode(translated)
        finally:
            await self.close()

    async def close(self) -> None:
        """Cancel the pending read and close the store iterator (no leaked tasks)."""
        if self._next is not None and not self._next.done():
            self._next.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._next
        elif self._next is not None and not self._next.cancelled():
            self._next.exception()  # retrieved, so asyncio does not log it as lost
        closer = getattr(self._events, "aclose", None)
        if closer is not None:
            with suppress(Exception):
                await closer()
        self._next = None
        self._events = None
