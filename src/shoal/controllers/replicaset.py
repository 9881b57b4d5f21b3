"""The ReplicaSet controller's executor: applies `reconcile_replicaset` plans through the client.

Pods are created in slow-start batches (1, 2, 4, ...), as Kubernetes does, so that a template
the API rejects costs one failed request, not hundreds; named `<rs>-<5 random characters>`.
Every create and delete records an Event on the ReplicaSet.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from shoal.api.errors import AlreadyExists, ApiError, Invalid, NotFound
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet, ReplicaSetStatus
from shoal.controllers.context import ControllerContext
from shoal.controllers.queue import Key
from shoal.controllers.replicaset_plan import build_pod, reconcile_replicaset
from shoal.controllers.runner import Result, TerminalError

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_BATCH = 100


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


class ReplicaSetExecutor:
    def __init__(self, context: ControllerContext) -> None:
        self.context = context

    async def reconcile(self, key: Key) -> Result | None:
        _, namespace, name = key
        ctx = self.context
        rs = ctx.replica_sets.get(namespace, name)
        if rs is None or rs.metadata.uid is None:
            return None
        pods = ctx.pods.owned_by(rs.metadata.uid)
        plan = reconcile_replicaset(rs, pods, ctx.clock.now())
        if plan.create:
            await self._create(rs, plan.create)
        if plan.delete:
            await asyncio.gather(*(self._delete(rs, pod) for pod in plan.delete))
        if plan.status is not None:
            await self._write_status(rs, plan.status)
        return Result(requeue_after=plan.requeue_after)

    async def _create(self, rs: ReplicaSet, count: int) -> None:
        batch = 1
        remaining = count
        while remaining > 0:
            size = min(batch, remaining)
            await asyncio.gather(*(self._create_one(rs) for _ in range(size)))
            remaining -= size
            batch = min(batch * 2, _MAX_BATCH)

    async def _create_one(self, rs: ReplicaSet) -> None:
        for _ in range(3):
            pod = build_pod(rs, f"{rs.metadata.name}-{random_suffix()}"[:253])
            try:
                created = await self.context.client.create(pod)
            except AlreadyExists:
                continue  # a name clash: draw another suffix
            except Invalid as error:
                # The template itself is rejected: retrying cannot help until it changes.
                self.context.recorder.record(rs, "Warning", "FailedCreate", str(error))
                raise TerminalError(f"pods of {rs.metadata.name} are invalid: {error}") from error
            except ApiError as error:
                self.context.recorder.record(rs, "Warning", "FailedCreate", str(error))
                raise
            self.context.pods.remember(created)
            self.context.recorder.record(
                rs, "Normal", "SuccessfulCreate", f"Created pod: {created.metadata.name}"
            )
            return
        raise AlreadyExists(f"could not find a free pod name for {rs.metadata.name}")

    async def _delete(self, rs: ReplicaSet, pod: Pod) -> None:
        with contextlib.suppress(NotFound):
            await self.context.client.delete(
                Pod, pod.metadata.name, pod.metadata.namespace or "default"
            )
        self.context.pods.deleted(pod)
        self.context.recorder.record(
            rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}"
        )

    async def _write_status(self, rs: ReplicaSet, status: ReplicaSetStatus) -> None:
        # Status is this controller's alone and one worker handles a key at a time, so the
        # write goes without resourceVersion: a concurrent spec change must not fail it.
        meta = rs.metadata.model_copy(update={"resource_version": None})
        changed = rs.model_copy(update={"status": status, "metadata": meta})
        try:
            written = await self.context.client.update_status(changed)
        except NotFound:
            return
        self.context.replica_sets.remember(written)
