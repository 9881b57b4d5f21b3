"""Events: what happened and why, recorded by controllers, the scheduler and the agent.

`EventRecorder(client, component).record(obj, type, reason, message)` returns at once: the
write happens in a background task, so a controller never waits for (or fails because of)
its events. Repeats are coalesced as Kubernetes does: the same object, reason and message
within the recorder's memory update one Event (count + 1, lastTimestamp) instead of creating
another; and, like Kubernetes' EventAggregator, from the 11th event of one object with the
same reason but different messages within 10 minutes, they update a single
"(combined from similar events): <latest message>" Event. Events waiting to be written are
merged the same way, so a burst (200 SuccessfulCreate) costs a handful of writes.
`await recorder.flush()` waits until everything recorded so far is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
        if pending is None:
            self._pending[key] = _Pending(ref, type_, reason, message, 1, when, when)
        else:
            pending.count += 1
            pending.message = message
            pending.last = when
        if self._wakeup is None or self._idle is None:
            self._wakeup, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.clear()
        self._wakeup.set()
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
        """Wait until every event recorded so far has been written (or given up on)."""
        if self._idle is not None and self._sender is not None and not self._sender.done():
            await self._idle.wait()

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
            key, pending = self._pending.popitem(last=False)
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
        while len(self._known) > _MEMORY:
            self._known.popitem(last=False)
