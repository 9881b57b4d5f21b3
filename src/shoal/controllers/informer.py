"""An informer: a local cache of one kind kept current by list + watch through the client.

- list, then watch from the list's revision; events update the cache and call handlers;
- `Gone` (the revision left the server's history) → re-list, and handlers see the difference;
- connection errors → reconnect with exponential backoff, resuming from the last revision;
- every `resync_seconds` handlers see every cached object again (level-triggered safety net);
- an index of objects by their controller owner's uid (pods of a ReplicaSet...).

Controllers read the cache instead of the server. So that a reconcile sees its own writes
before the watch delivers them, executors hand the objects the server returned to
`remember` (write-through), and deleted ones to `forget`; the cache only ever moves forward
in resourceVersion, so a late watch event cannot bring back an older state.

Created by `shoal.controllers.manager`, one per kind, shared by every controller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

from shoal.api.errors import ApiError, Gone
from shoal.api.meta import Resource
from shoal.client import AsyncClient
from shoal.controllers.clock import Clock, SystemClock

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Resource)
CacheKey = tuple[str, str]  # (namespace or "", name)
EventKind = Literal["ADDED", "MODIFIED", "DELETED"]
Handler = Callable[[EventKind, R], None]


def cache_key(obj: Resource) -> CacheKey:
    return (obj.metadata.namespace or "", obj.metadata.name)


def revision_of(obj: Resource) -> int:
    try:
        return int(obj.metadata.resource_version or 0)
    except ValueError:
        return 0


class Informer(Generic[R]):
    def __init__(
        self,
        client: AsyncClient,
        cls: type[R],
        *,
        clock: Clock | None = None,
        resync_seconds: float = 300.0,
        max_backoff: float = 10.0,
    ) -> None:
        self.client = client
        self.cls = cls
        self.clock: Clock = clock or SystemClock()
        self.resync_seconds = resync_seconds
        self.max_backoff = max_backoff
        self.synced = asyncio.Event()
        self.revision = 0
        self._cache: dict[CacheKey, R] = {}
        self._by_owner: dict[str, set[CacheKey]] = {}
        self._handlers: list[Handler[R]] = []
        self._tombstones: dict[CacheKey, str | None] = {}

    # -- reading -------------------------------------------------------------------------
    def get(self, namespace: str | None, name: str) -> R | None:
        return self._cache.get((namespace or "", name))

    def items(self, namespace: str | None = None) -> list[R]:
        if namespace is None:
            return list(self._cache.values())
        return [obj for key, obj in self._cache.items() if key[0] == namespace]

    def owned_by(self, uid: str) -> list[R]:
        """Objects whose controller owner reference has this uid."""
        return [self._cache[key] for key in self._by_owner.get(uid, ()) if key in self._cache]

    def add_handler(self, handler: Handler[R]) -> None:
        self._handlers.append(handler)

    # -- writing the cache -----------------------------------------------------------------
    def remember(self, obj: R) -> bool:
        """Store `obj` unless the cache holds a newer version; True if it changed the cache."""
        key = cache_key(obj)
        current = self._cache.get(key)
        if current is not None and revision_of(current) >= revision_of(obj):
            return False
        if current is not None:
            self._unindex(key, current)
        self._cache[key] = obj
        ref = obj.metadata.controller_ref()
        if ref is not None:
            self._by_owner.setdefault(ref.uid, set()).add(key)
        return True

    def forget(self, obj: Resource) -> R | None:
        key = cache_key(obj)
        current = self._cache.pop(key, None)
        if current is not None:
            self._unindex(key, current)
        return current

    def deleted(self, obj: Resource) -> None:
        """We deleted `obj`: drop it, and ignore stale events about it until its deletion
        (or its deletionTimestamp, when finalizers keep it) comes back through the watch."""
        self.forget(obj)
        self._tombstones[cache_key(obj)] = obj.metadata.uid

    def _unindex(self, key: CacheKey, obj: R) -> None:
        ref = obj.metadata.controller_ref()
        if ref is not None:
            keys = self._by_owner.get(ref.uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_owner[ref.uid]

    def _notify(self, kind: EventKind, obj: R) -> None:
        for handler in self._handlers:
            try:
                handler(kind, obj)
            except Exception:  # a broken handler must not stop the informer
                log.exception("informer %s: handler failed", self.cls.KIND)

    # -- running ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        loop_task = asyncio.create_task(self._loop())
        resync_task = asyncio.create_task(self._resync())
        try:
            await stop.wait()
        finally:
            for task in (loop_task, resync_task):
                task.cancel()
            await asyncio.gather(loop_task, resync_task, return_exceptions=True)

    async def _relist(self) -> None:
        listed = await self.client.list(self.cls)
        fresh = {cache_key(obj): obj for obj in listed.items}
        self._tombstones = {k: v for k, v in self._tombstones.items() if k in fresh}
        for key, old in list(self._cache.items()):
            if key not in fresh and revision_of(old) <= listed.revision:
                self.forget(old)
                self._notify("DELETED", old)
        for obj in listed.items:
            if cache_key(obj) in self._tombstones and obj.metadata.deletion_timestamp is None:
                continue
            existed = cache_key(obj) in self._cache
            if self.remember(obj):
                self._notify("MODIFIED" if existed else "ADDED", obj)
        self.revision = max(self.revision, listed.revision)
        self.synced.set()

    async def _loop(self) -> None:
        failures = 0
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                async for event in self.client.watch(self.cls, since=self.revision):
                    failures = 0
                    self.revision = max(self.revision, event.revision)
                    self._apply(event.type, event.object)
            except Gone:
                log.info(
                    "informer %s: revision %d expired, re-listing", self.cls.KIND, self.revision
                )
                need_list = True
                continue
            except (ApiError, OSError, ValueError) as error:
                delay = min(self.max_backoff, 0.1 * 2**failures)
                failures += 1
                log.info("informer %s: %s; reconnecting in %.1fs", self.cls.KIND, error, delay)
                await self.clock.sleep(delay)
                continue

    def _apply(self, kind: EventKind, obj: R) -> None:
        if kind == "DELETED":
            current = self._cache.get(cache_key(obj))
            if current is not None and current.metadata.uid not in (None, obj.metadata.uid):
                return  # a newer object of the same name already replaced it
            self._tombstones.pop(cache_key(obj), None)
            self.forget(obj)
            self._notify("DELETED", obj)
            return
        key = cache_key(obj)
        if key in self._tombstones:
            if obj.metadata.uid != self._tombstones[key]:
                del self._tombstones[key]  # a new object reusing the name
            elif obj.metadata.deletion_timestamp is None:
                return  # older than our delete
        current = self._cache.get(key)
        if current is not None and revision_of(current) > revision_of(obj):
            return  # older than what we wrote through
        self.remember(obj)
        # Notified also when our own write put this version in the cache already: the
        # other controllers learn of the change only here.
        self._notify(kind, obj)

    async def _resync(self) -> None:
        while True:
            await self.clock.sleep(self.resync_seconds)
            for obj in list(self._cache.values()):
                self._notify("MODIFIED", obj)
