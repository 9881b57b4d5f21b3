"""The pod worker's writes to the API: status (read-modify-write) and its finalizer.

Called only by the pod worker. Reads start from the agent's informer cache (the newest version
the agent knows), a 409 Conflict re-reads the pod from the server and tries again, and every
version the server returns is written through to the cache and handed to `on_change`, so the
worker and the routing table see the agent's own writes at once. Writes of one pod happen one
at a time, in the order they were asked for (a worker may fire one and go on), and none before
`gate` is set or `GATE_SECONDS` have passed (the worker holds writes back while another
component's write to the pod is due, instead of racing it into a 409 Conflict).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from shoal.api.errors import ApiError, Conflict, NotFound
from shoal.api.pod import Pod, PodStatus
from shoal.client import AsyncClient
from shoal.controllers.informer import Informer

log = logging.getLogger(__name__)

ATTEMPTS = 10
GATE_SECONDS = 1.0


class PodWrites:
    def __init__(
        self,
        client: AsyncClient,
        cache: Informer[Pod],
        pod: Pod,
        on_change: Callable[[Pod], None],
        gate: asyncio.Event | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.pod = pod
        self.uid = pod.metadata.uid
        self.on_change = on_change
        self._turn = asyncio.Lock()  # FIFO: writes land in the order they were asked for
        self.gate = gate or asyncio.Event()
        if gate is None:
            self.gate.set()

    def latest(self) -> Pod:
        cached = self.cache.get(self.pod.metadata.namespace, self.pod.metadata.name)
        if cached is not None and cached.metadata.uid == self.uid:
            self.pod = cached
        return self.pod

    async def status(self, mutate: Callable[[PodStatus], None]) -> None:
        """Apply `mutate` to the newest status and write it, unless it changes nothing.
        Dropped when the pod is gone or the server refuses it (logged)."""
        async with self._turn:
            await self._wait_gate()
            await self._status(mutate)

    async def _status(self, mutate: Callable[[PodStatus], None]) -> None:
        for _ in range(ATTEMPTS):
            pod = self.latest()
            status = pod.status.model_copy(deep=True)
            mutate(status)
            if status == pod.status:
                return
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

    async def finalizer(self, name: str, present: bool) -> bool:
        """Add or remove finalizer `name`; False when the pod is gone."""
        async with self._turn:
            await self._wait_gate()
            return await self._finalizer(name, present)

    async def _wait_gate(self) -> None:
        if not self.gate.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gate.wait(), GATE_SECONDS)
            self.gate.set()

    async def _finalizer(self, name: str, present: bool) -> bool:
        for _ in range(ATTEMPTS):
            pod = self.latest()
            if (name in pod.metadata.finalizers) == present:
                return True
            finalizers = [f for f in pod.metadata.finalizers if f != name]
            if present:
                finalizers.append(name)
            meta = pod.metadata.model_copy(update={"finalizers": finalizers})
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
