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
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field

import orjson

from shoal.api.errors import ApiError, Gone
from shoal.api.selectors import LabelSelector
from shoal.store.base import Object, Store, WatchEvent, object_key

log = logging.getLogger(__name__)

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


_END = object()  # the store iterator ended, or the server is shutting down
_BOOKMARK = object()  # the bookmark timer fired while the stream was quiet
QUEUE_LIMIT = 1_000  # a slower reader backs up into the store's queue, which answers Gone


@dataclass(slots=True, eq=False)  # identity semantics: kept in OpenWatches' set
class WatchStream:
    """One watcher's stream. `start()` may raise Gone (answered as HTTP 410 by the route);
    `body()` is the response body and cleans up however it ends.

    A pump task moves store events into a bounded queue and a timer drops a bookmark marker
    in it when the stream was quiet for BOOKMARK_SECONDS, so the body only awaits the queue:
    no task or timer per event, and whatever queued up meanwhile leaves in one chunk.
    """

    store: Store
    kind: str
    namespace: str | None
    since: int
    selector: LabelSelector | None
    lines: LineCache = field(default_factory=LineCache)
    initial: list[WatchEvent] = field(default_factory=list)
    _events: AsyncIterator[WatchEvent] | None = None
    _pump: asyncio.Task[None] | None = None
    _timer: asyncio.TimerHandle | None = None
    _queue: asyncio.Queue[object] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    _quiet: bool = True
    _finishing: bool = False
    _filter: SelectorFilter | None = None

    def finish(self) -> None:
        """End the stream cleanly (last chunk sent) instead of being cut at shutdown."""
        self._finishing = True
        with suppress(asyncio.QueueFull):
            self._queue.put_nowait(_END)

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
        first = asyncio.ensure_future(anext(self._events))
        await asyncio.wait({first}, timeout=FIRST_EVENT_WAIT)
        if first.done() and isinstance(first.exception(), Gone):
            await self.close()
            raise Gone(
                f"resourceVersion {self.since} is too old; list again and watch "
                "from the list's resourceVersion"
            )
        self._pump = asyncio.create_task(self._run_pump(first))
        self._timer = asyncio.get_running_loop().call_later(BOOKMARK_SECONDS, self._tick)

    async def _run_pump(self, first: asyncio.Future[WatchEvent]) -> None:
        assert self._events is not None
        try:
            await self._queue.put(await first)
            async for event in self._events:
                await self._queue.put(event)
            await self._queue.put(_END)
        except StopAsyncIteration:
            await self._queue.put(_END)
        except ApiError as error:
            await self._queue.put(error)
        except Exception as error:
            log.exception("watch of %s failed", self.kind)
            await self._queue.put(ApiError(f"watch failed: {error}; watch again"))

    def _tick(self) -> None:
        if self._quiet and self._queue.empty():
            self._queue.put_nowait(_BOOKMARK)
        self._quiet = True
        self._timer = asyncio.get_running_loop().call_later(BOOKMARK_SECONDS, self._tick)

    async def body(self) -> AsyncIterator[bytes]:
        try:
            for event in self.initial:
                yield line(event.to_json())
            last = self.since
            while True:
                chunk: list[bytes] = []
                item = await self._queue.get()
                while True:
                    if item is _END:
                        yield b"".join(chunk)
                        return
                    if isinstance(item, ApiError):
                        chunk.append(line({"type": "ERROR", "object": item.to_status()}))
                        yield b"".join(chunk)
                        return
                    if item is _BOOKMARK:
                        chunk.append(bookmark(self.kind, last))
                    elif isinstance(item, WatchEvent):
                        self._quiet = False
                        last = item.revision
                        translated = self._filter.translate(item) if self._filter else item
                        if translated is not None:
                            chunk.append(self.lines.encode(translated))
                    if self._queue.empty():
                        break
                    item = self._queue.get_nowait()
                if chunk:
                    yield b"".join(chunk)
                if self._finishing:
                    return
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop the timer and the pump and close the store iterator (no leaked tasks)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pump is not None:
            self._pump.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._pump
            self._pump = None
        closer = getattr(self._events, "aclose", None)
        if closer is not None:
            with suppress(Exception):
                await closer()
        self._events = None


class OpenWatches:
    """The app's open watch streams, so a shutting-down server can end them cleanly."""

    def __init__(self) -> None:
        self.streams: set[WatchStream] = set()

    def finish_all(self) -> None:
        for stream in list(self.streams):
            stream.finish()
