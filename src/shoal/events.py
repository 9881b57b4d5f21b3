"""Events: what happened and why, recorded by controllers, the scheduler and the agent.

`EventRecorder(client, component).record(obj, type, reason, message)` returns at once: the
write happens in a background task, so a controller never waits for (or fails because of)
its events. Repeats are coalesced as Kubernetes does: the same object, reason and message
within the recorder's memory update one Event (count + 1, lastTimestamp) instead of creating
another; and, like Kubernetes' EventAggregator, from the 11th event of one object with the
same reason but different messages within 10 minutes, they update a single
"(combined from similar events): <latest message>" Event. Events waiting to be written are
merged the same way, so a burst (200 SuccessfulCreate) costs a handful of writes. A repeat of an
Event already written waits until `_BUMP_SECONDS` after that Event's last write (repeats meanwhile
merge into it): 500 crash-looping pods cost a count update per pod and reason every 10 s at
most, not one per restart; the first occurrence is written at once.
`await recorder.flush()` writes everything recorded so far, waiting for no bump interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shoal.api.errors import ApiError, Conflict, NotFound
from shoal.api.event import Event, EventSource, ObjectReference
from shoal.api.meta import DEFAULT_NAMESPACE, ObjectMeta, Resource
from shoal.client import AsyncClient

log = logging.getLogger(__name__)

_MEMORY = 4096  # coalescing keys kept; older ones start a new Event
_SIMILAR_LIMIT = 10  # distinct messages per (object, reason) before they are combined
_SIMILAR_WINDOW = timedelta(minutes=10)
_COMBINED = "(combined from similar events): "
_BUMP_SECONDS = 10.0  # a written Event's count is updated at most this often

Key = tuple[str, str, str, str]


@dataclass
class _Pending:
    ref: ObjectReference
    type: str
    reason: str
    message: str
    count: int
    first: datetime
    last: datetime
    not_before: float = 0.0  # monotonic: a bump waits for the key's interval


def _now() -> datetime:
    return datetime.now(UTC)


class EventRecorder:
    def __init__(self, client: AsyncClient, component: str, host: str | None = None) -> None:
        self.client = client
        self.source = EventSource(component=component, host=host)
        self._pending: OrderedDict[Key, _Pending] = OrderedDict()
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._sender: asyncio.Task[None] | None = None
        self._known: OrderedDict[Key, Event] = OrderedDict()
        self._sent_at: dict[Key, float] = {}  # monotonic time of each known Event's last write
        self._hurry = False  # flush(): bumps go now
        self._similar: dict[tuple[str, str, str], tuple[datetime, set[str]]] = {}

    def record(self, obj: Resource, type_: str, reason: str, message: str) -> None:
        """Record an event about `obj` (type "Normal" or "Warning")."""
        ref = ObjectReference(
            kind=obj.kind,
            name=obj.metadata.name,
            namespace=obj.metadata.namespace,
            uid=obj.metadata.uid,
        )
        when = _now()
        identity = ref.uid or f"{ref.kind}/{ref.namespace}/{ref.name}"
        if self._is_similar(identity, reason, type_, message, when):
            key: Key = (identity, reason, "*", type_)
            message = _COMBINED + message
        else:
            key = (identity, reason, message, type_)
        pending = self._pending.get(key)
        if self._wakeup is None or self._idle is None:
            self._wakeup, self._idle = asyncio.Event(), asyncio.Event()
        if pending is None:
            not_before = bump_time(self._sent_at.get(key))
            self._pending[key] = _Pending(ref, type_, reason, message, 1, when, when, not_before)
            self._idle.clear()
            self._wakeup.set()
        else:  # already due to be written: it carries this one too
            pending.count += 1
            pending.message = message
            pending.last = when
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    def _is_similar(
        self, identity: str, reason: str, type_: str, message: str, when: datetime
    ) -> bool:
        group = (identity, reason, type_)
        since, messages = self._similar.get(group, (when, set()))
        if when - since > _SIMILAR_WINDOW:
            since, messages = when, set()
        messages.add(message)
        self._similar[group] = (since, messages)
        if len(self._similar) > _MEMORY:
            self._similar.pop(next(iter(self._similar)))
        return len(messages) > _SIMILAR_LIMIT

    async def flush(self) -> None:
        """Write every event recorded so far now (bump intervals aside) and wait until it is
        written (or given up on)."""
        if self._idle is not None and self._sender is not None and not self._sender.done():
            self._hurry = True
            if self._wakeup is not None:
                self._wakeup.set()
            try:
                await self._idle.wait()
            finally:
                self._hurry = False

    async def close(self, grace_seconds: float = 2.0) -> None:
        """Write what is pending (for at most `grace_seconds`), then stop the sender."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), grace_seconds)
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _send_all(self) -> None:
        assert self._wakeup is not None and self._idle is not None
        while True:
            if not self._pending:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            key, wait = due(self._pending, time.monotonic(), self._hurry)
            if key is None:  # only bumps whose interval has not passed: sleep until the first
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wait)
                continue
            pending = self._pending.pop(key)
            try:
                await self._send(key, pending)
            except ApiError as error:
                log.info("event %s/%s not recorded: %s", pending.ref.name, pending.reason, error)
            except Exception:
                log.exception("event %s/%s not recorded", pending.ref.name, pending.reason)

    async def _send(self, key: Key, pending: _Pending) -> None:
        known = self._known.get(key)
        if known is not None:
            bumped = known.model_copy(
                update={
                    "count": known.count + pending.count,
                    "message": pending.message,
                    "last_timestamp": pending.last,
                }
            )
            try:
                self._remember(key, await self.client.update(bumped))
                return
            except (Conflict, NotFound):
                pass  # someone removed or changed it: start a fresh Event
        ref = pending.ref
        event = Event(
            kind="Event",
            metadata=ObjectMeta(
                name=f"{ref.name}.{uuid.uuid4().hex[:16]}"[:253],
                namespace=ref.namespace or DEFAULT_NAMESPACE,
            ),
            involved_object=ref,
            reason=pending.reason,
            message=pending.message,
            type="Warning" if pending.type == "Warning" else "Normal",
            count=pending.count,
            first_timestamp=pending.first,
            last_timestamp=pending.last,
            source=self.source,
        )
        self._remember(key, await self.client.create(event))

    def _remember(self, key: Key, event: Event) -> None:
        self._known[key] = event
        self._known.move_to_end(key)
        self._sent_at[key] = time.monotonic()
        while len(self._known) > _MEMORY:
            old, _ = self._known.popitem(last=False)
            self._sent_at.pop(old, None)


def bump_time(sent_at: float | None) -> float:
    """When a repeat of an Event last written at `sent_at` (monotonic) may be written."""
    return 0.0 if sent_at is None else sent_at + _BUMP_SECONDS


def due(pending: OrderedDict[Key, _Pending], now: float, hurry: bool) -> tuple[Key | None, float]:
    """The first pending key that may be written now (oldest first), else None and how long
    until one may."""
    soonest = float("inf")
    for key, item in pending.items():
        if hurry or item.not_before <= now:
            return key, 0.0
        soonest = min(soonest, item.not_before)
    return None, max(soonest - now, 0.0)
