"""The pod worker's writes to the API: status (read-modify-write) and its finalizer.

Called only by the pod worker. A write is asked for synchronously (`status(mutate)`,
`finalizer(name, present)`) and returns a future the caller may await or not; one writer task
per pod sends them, in the order they were asked for, at most one request in flight per pod.
Status changes that queue up while a write is in flight or waits for one of the agent's write
slots (writeslots.py) are coalesced: they are applied in order to the newest status and sent
as one write (latest state wins). A routine change (one that changes neither the phase,
readiness nor a start failure's reason: a crash-looping pod's restart bookkeeping) waits behind
urgent ones for a slot. A restart's new process may be asked to `linger`: its write waits up to
a second for the next change, so a process that crashes at once costs one write per restart
(its exit and back-off), not two. A finalizer change is never merged with status changes.

Reads start from the agent's informer cache (the newest version the agent knows), a 409
Conflict re-reads the pod from the server and applies the changes again, and every version the
server returns is written through to the cache and handed to `on_change`, so the worker and the
routing table see the agent's own writes at once. Nothing is written before `gate` is set or
`GATE_SECONDS` have passed (the worker holds writes back while another component's write to the
pod is due, instead of racing it into a 409 Conflict).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from shoal.agent.podstatus import CRASH_LOOP
from shoal.agent.writeslots import WriteSlots
from shoal.api.errors import ApiError, Conflict, NotFound
from shoal.api.meta import find_condition
from shoal.api.pod import Pod, PodStatus
from shoal.client import AsyncClient
from shoal.controllers.informer import Informer

log = logging.getLogger(__name__)

ATTEMPTS = 10
GATE_SECONDS = 1.0
# How long a restart's write waits for more changes to join it: a crash-looping process started
# and gone within it costs one write per restart, not two.
LINGER_SECONDS = 1.0
Mutation = Callable[[PodStatus], None]
T = TypeVar("T")


@dataclass
class _StatusChange:
    mutate: Mutation
    done: asyncio.Future[None]
    linger: bool = False


@dataclass
class _FinalizerChange:
    name: str
    present: bool
    done: asyncio.Future[bool] = field(repr=False)


_Change = _StatusChange | _FinalizerChange


# -- pure decisions ---------------------------------------------------------------------------
def coalesce(status: PodStatus, mutations: Sequence[Mutation]) -> PodStatus:
    """`status` after every mutation, in order (a copy; `status` is left as it is)."""
    result = status.model_copy(deep=True)
    for mutate in mutations:
        mutate(result)
    return result


def urgent_view(status: PodStatus) -> tuple[str, bool, str | None, str | None, str | None]:
    """What a change must touch to be urgent: the phase, readiness, and why the pod cannot run
    (a start failure's reason; CrashLoopBackOff comes and goes with every restart, so not it)."""
    ready = find_condition(status.conditions, "Ready")
    containers = find_condition(status.conditions, "ContainersReady")
    return (
        status.phase,
        status.ready,
        ready.status if ready else None,
        containers.status if containers else None,
        None if status.reason == CRASH_LOOP else status.reason,
    )


def is_urgent(before: PodStatus, after: PodStatus) -> bool:
    """A write that changes the phase, readiness or a start failure's reason goes before
    routine ones: routing, the controllers and the user wait on it; a crash-looping pod's
    restart bookkeeping can wait."""
    return urgent_view(before) != urgent_view(after)


def is_urgent_batch(status: PodStatus, batch: Sequence[_Change]) -> bool:
    """A finalizer change is urgent (it is asked for once per pod, and a deletion or the first
    start waits on it); status changes are when they change the phase or readiness."""
    if not batch:
        return False
    if isinstance(batch[0], _FinalizerChange):
        return True
    return is_urgent(status, coalesce(status, _mutations(batch)))


def lingers(batch: Sequence[_Change]) -> bool:
    """A batch waits for more only while every change in it asked to linger."""
    return bool(batch) and all(isinstance(c, _StatusChange) and c.linger for c in batch)


def next_batch(queue: Sequence[_Change]) -> list[_Change]:
    """What the writer sends next: a finalizer change alone, or every status change up to the
    next finalizer change (which must land after them, as it was asked for after them)."""
    if not queue:
        return []
    if isinstance(queue[0], _FinalizerChange):
        return [queue[0]]
    batch: list[_Change] = []
    for change in queue:
        if isinstance(change, _FinalizerChange):
            break
        batch.append(change)
    return batch


def _mutations(batch: Sequence[_Change]) -> list[Mutation]:
    return [change.mutate for change in batch if isinstance(change, _StatusChange)]


def _settle(done: asyncio.Future[T], value: T) -> None:
    if not done.done():  # a caller that was cancelled no longer waits
        done.set_result(value)


# -- the writer ---------------------------------------------------------------------------------
class PodWrites:
    def __init__(
        self,
        client: AsyncClient,
        cache: Informer[Pod],
        pod: Pod,
        on_change: Callable[[Pod], None],
        gate: asyncio.Event | None = None,
        *,
        slots: WriteSlots | None = None,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self.client = client
        self.cache = cache
        self.pod = pod
        self.uid = pod.metadata.uid
        self.on_change = on_change
        self.slots = slots or WriteSlots(1)  # one per pod at least: one request in flight
        self.gate = gate or asyncio.Event()
        if gate is None:
            self.gate.set()
        self.linger = linger
        self._queue: list[_Change] = []
        self._nudge = asyncio.Event()  # something was queued (may end a linger)
        self._writer: asyncio.Task[None] | None = None
        self.sent = 0  # API writes sent (status and finalizer), for tests and figures

    def latest(self) -> Pod:
        cached = self.cache.get(self.pod.metadata.namespace, self.pod.metadata.name)
        if cached is not None and cached.metadata.uid == self.uid:
            self.pod = cached
        return self.pod

    def status(self, mutate: Mutation, *, linger: bool = False) -> asyncio.Future[None]:
        """Apply `mutate` to the newest status and write it, unless it changes nothing. The
        future is done once a write including it landed, or it was dropped because the pod is
        gone or the server refused it (logged). `linger`: a routine change that is likely to be
        superseded soon (a restarted process) waits up to `linger` seconds for the next one."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(_StatusChange(mutate, done, linger))
        return done

    def finalizer(self, name: str, present: bool) -> asyncio.Future[bool]:
        """Add or remove finalizer `name`; the future says False when the pod is gone."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._enqueue(_FinalizerChange(name, present, done))
        return done

    def cancel(self) -> None:
        """The agent is going away: pending writes are dropped."""
        if self._writer is not None:
            self._writer.cancel()
        for change in self._queue:
            change.done.cancel()
        self._queue.clear()

    def _enqueue(self, change: _Change) -> None:
        self._queue.append(change)
        self._nudge.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_all())

    async def _write_all(self) -> None:
        await self._wait_gate()
        while self._queue:
            urgent = await self._linger()
            async with self.slots.hold(urgent):
                # Status changes queued while we waited for the slot go in the same write.
                batch = next_batch(self._queue)
                del self._queue[: len(batch)]
                try:
                    first = batch[0]
                    if isinstance(first, _FinalizerChange):
                        ok = await self._finalizer(first.name, first.present)
                        _settle(first.done, ok)
                    else:
                        await self._status(_mutations(batch))
                        for each in batch:
                            if isinstance(each, _StatusChange):
                                _settle(each.done, None)
                except Exception as error:  # the callers' to handle, as if they had written
                    for failed in batch:
                        if not failed.done.done():
                            failed.done.set_exception(error)

    async def _linger(self) -> bool:
        """Hold a lingering routine write back for up to `linger` seconds, so that what queues
        meanwhile goes in the same write; any other change ends the wait. Returns whether the
        write is urgent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        await asyncio.sleep(0)  # what the caller asks for in the same step joins this write
        while True:
            batch = next_batch(self._queue)
            urgent = is_urgent_batch(self.latest().status, batch)
            remaining = deadline - loop.time()
            if urgent or remaining <= 0 or not lingers(batch):
                return urgent
            self._nudge.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), remaining)

    async def _wait_gate(self) -> None:
        if not self.gate.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gate.wait(), GATE_SECONDS)
            self.gate.set()

    async def _status(self, mutations: Sequence[Mutation]) -> None:
        for _ in range(ATTEMPTS):
            pod = self.latest()
            status = coalesce(pod.status, mutations)
            if status == pod.status:
                return
            self.sent += 1
            try:
                updated = await self.client.update_status(pod.model_copy(update={"status": status}))
            except Conflict:
                await self.refresh()
                continue
            except NotFound:
                return
            except ApiError as error:
                log.warning("pod %s: status not written: %s", pod.metadata.name, error)
                return
            self._changed(updated)
            return

    async def _finalizer(self, name: str, present: bool) -> bool:
        for _ in range(ATTEMPTS):
            pod = self.latest()
            if (name in pod.metadata.finalizers) == present:
                return True
            finalizers = [f for f in pod.metadata.finalizers if f != name]
            if present:
                finalizers.append(name)
            meta = pod.metadata.model_copy(update={"finalizers": finalizers})
            self.sent += 1
            try:
                updated = await self.client.update(pod.model_copy(update={"metadata": meta}))
            except Conflict:
                await self.refresh()
                continue
            except NotFound:
                return False
            self._changed(updated)
            return True
        return False

    async def refresh(self) -> None:
        with contextlib.suppress(NotFound):
            meta = self.pod.metadata
            fresh = await self.client.get(Pod, meta.name, meta.namespace or "default")
            if fresh.metadata.uid == self.uid:
                self._changed(fresh)

    def _changed(self, pod: Pod) -> None:
        self.cache.remember(pod)
        self.pod = pod
        self.on_change(pod)
