"""Events: what happened and why, recorded by controllers, the scheduler and the agent.

`EventRecorder(client, component).record(obj, type, reason, message)` returns at once: the
write happens in a background task, so a controller never waits for (or fails because of)
its events. Repeats are coalesced as Kubernetes does: the same object, reason and message
within the recorder's memory update one Event (count + 1, lastTimestamp) instead of creating
another. `await recorder.flush()` waits until everything recorded so far is written.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from datetime import UTC, datetime

from shoal.api.errors import ApiError, Conflict, NotFound
from shoal.api.event import Event, EventSource, ObjectReference
from shoal.api.meta import DEFAULT_NAMESPACE, ObjectMeta, Resource
from shoal.client import AsyncClient

log = logging.getLogger(__name__)

_MEMORY = 4096  # coalescing keys kept; older ones start a new Event


def _now() -> datetime:
    return datetime.now(UTC)


class EventRecorder:
    def __init__(self, client: AsyncClient, component: str, host: str | None = None) -> None:
        self.client = client
        self.source = EventSource(component=component, host=host)
        self._pending: asyncio.Queue[tuple[ObjectReference, str, str, str, datetime]] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._known: OrderedDict[tuple[str, str, str, str], Event] = OrderedDict()

    def record(self, obj: Resource, type_: str, reason: str, message: str) -> None:
        """Record an event about `obj` (type "Normal" or "Warning")."""
        ref = ObjectReference(kind=obj.kind, name=obj.metadata.name,
                              namespace=obj.metadata.namespace, uid=obj.metadata.uid)
        if self._pending is None:
            self._pending = asyncio.Queue()
        self._pending.put_nowait((ref, type_, reason, message, _now()))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def flush(self) -> None:
        if self._pending is not None:
            await self._pending.join()

    async def close(self) -> None:
        await self.flush()
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _send_all(self) -> None:
        assert self._pending is not None
        while True:
            ref, type_, reason, message, when = await self._pending.get()
            try:
                await self._send(ref, type_, reason, message, when)
            except ApiError as error:
                log.info("event %s/%s not recorded: %s", ref.name, reason, error)
            except Exception:
                log.exception("event %s/%s not recorded", ref.name, reason)
            finally:
                self._pending.task_done()

    async def _send(self, ref: ObjectReference, type_: str, reason: str, message: str,
                    when: datetime) -> None:
        key = (ref.uid or f"{ref.kind}/{ref.namespace}/{ref.name}", reason, message, type_)
        known = self._known.get(key)
        if known is not None:
            bumped = known.model_copy(update={"count": known.count + 1, "last_timestamp": when})
            try:
                self._remember(key, await self.client.update(bumped))
                return
            except (Conflict, NotFound):
                pass  # someone removed or changed it: start a fresh Event
        event = Event(
            kind="Event",
            metadata=ObjectMeta(name=f"{ref.name}.{uuid.uuid4().hex[:16]}"[:253],
                                namespace=ref.namespace or DEFAULT_NAMESPACE),
            involved_object=ref, reason=reason, message=message,
            type="Warning" if type_ == "Warning" else "Normal",
            count=1, first_timestamp=when, last_timestamp=when, source=self.source,
        )
        self._remember(key, await self.client.create(event))

    def _remember(self, key: tuple[str, str, str, str], event: Event) -> None:
        self._known[key] = event
        self._known.move_to_end(key)
        while len(self._known) > _MEMORY:
            self._known.popitem(last=False)
