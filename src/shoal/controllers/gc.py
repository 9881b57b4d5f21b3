"""Garbage collector: deletes objects whose controller owner (by uid) no longer exists.

Background cascading deletion, as Kubernetes' default: the owner goes first, then its
dependents are deleted one level at a time (Deployment → its ReplicaSets → their Pods).
Dependents are deleted without `force`, so a pod with a finalizer takes the graceful path and
stays (with deletionTimestamp) until the agent removes the finalizer.

A dependent is checked whenever it appears or its owner disappears. Before deleting, the owner
is looked up through the API as well: the cache may simply not have seen a new owner yet.
"""

from __future__ import annotations

import contextlib

from shoal.api.errors import NotFound
from shoal.api.registry import KINDS
from shoal.controllers.context import ControllerContext
from shoal.controllers.queue import Key
from shoal.controllers.runner import Result


class GarbageCollector:
    def __init__(self, context: ControllerContext) -> None:
        self.context = context

    async def reconcile(self, key: Key) -> Result | None:
        kind, namespace, name = key
        ctx = self.context
        informer = ctx.informer_for(kind)
        if informer is None:
            return None
        obj = informer.get(namespace, name)
        if obj is None or obj.metadata.deletion_timestamp is not None:
            return None
        ref = obj.metadata.controller_ref()
        if ref is None:
            return None
        owners = ctx.informer_for(ref.kind)
        if owners is None or not owners.synced.is_set():
            return Result(requeue_after=1.0)
        owner = owners.get(namespace, ref.name)
        if owner is not None and owner.metadata.uid == ref.uid:
            return None
        owner_cls = KINDS.get(ref.kind)
        if owner_cls is None:
            return None
        try:
            live = await ctx.client.get(owner_cls, ref.name, namespace or "default")
            if live.metadata.uid == ref.uid:
                owners.remember(live)
                return None
        except NotFound:
            pass
        with contextlib.suppress(NotFound):
            await ctx.client.delete(type(obj), name, namespace or "default")
        informer.deleted(obj)
        ctx.recorder.record(
            obj,
            "Normal",
            "GarbageCollected",
            f"Deleted {kind} {name}: its owner {ref.kind} {ref.name} is gone",
        )
        return None
