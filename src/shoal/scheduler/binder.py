"""The binding controller: applies `fit.schedule` decisions through the client.

Binding sets `spec.nodeName` with compare-and-set (a pod changed meanwhile is re-read and
re-decided) and then the PodScheduled=True condition. A pod that fits nowhere gets
PodScheduled=False (reason Unschedulable) and a FailedScheduling event with the reason, and is
tried again when nodes change or after a backoff. One worker decides at a time, and each
binding goes into the cache at once, so two pods never take the same free capacity.
"""

from __future__ import annotations

from shoal.api.errors import Conflict, NotFound
from shoal.api.meta import Condition, find_condition, set_condition
from shoal.api.pod import Pod
from shoal.controllers.context import ControllerContext
from shoal.controllers.queue import Key
from shoal.controllers.replicaset_plan import is_active
from shoal.controllers.runner import Result
from shoal.scheduler.fit import Scheduled, schedule

RETRY_UNSCHEDULABLE = 10.0


def needs_scheduling(pod: Pod) -> bool:
    return not pod.spec.node_name and is_active(pod)


class Binder:
    def __init__(self, context: ControllerContext) -> None:
        self.context = context

    def pods_by_node(self) -> dict[str, list[Pod]]:
        bound: dict[str, list[Pod]] = {}
        for pod in self.context.pods.items():
            if pod.spec.node_name and is_active(pod):
                bound.setdefault(pod.spec.node_name, []).append(pod)
        return bound

    async def reconcile(self, key: Key) -> Result | None:
        _, namespace, name = key
        ctx = self.context
        pod = ctx.pods.get(namespace, name)
        if pod is None or not needs_scheduling(pod):
            return None
        decision = schedule(pod, ctx.nodes.items(), self.pods_by_node())
        if isinstance(decision, Scheduled):
            bound = pod.model_copy(deep=True)
            bound.spec.node_name = decision.node
            try:
                written = await ctx.client.update(bound)
            except NotFound:
                return None
            ctx.pods.remember(written)
            condition = Condition(type="PodScheduled", status="True")
            await self._set_condition(written, condition)
            ctx.recorder.record(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {namespace}/{name} to {decision.node}",
            )
            return None
        current = find_condition(pod.status.conditions, "PodScheduled")
        if current is None or current.message != decision.reason:
            await self._set_condition(
                pod,
                Condition(
                    type="PodScheduled",
                    status="False",
                    reason="Unschedulable",
                    message=decision.reason,
                ),
            )
        ctx.recorder.record(pod, "Warning", "FailedScheduling", decision.reason)
        return Result(requeue_after=RETRY_UNSCHEDULABLE)

    async def _set_condition(self, pod: Pod, condition: Condition) -> None:
        """Compare-and-set: the agent writes pod status too, its fields must survive."""
        ctx = self.context
        current = ctx.pods.get(pod.metadata.namespace, pod.metadata.name) or pod
        for _ in range(5):
            status = current.status.model_copy(deep=True)
            status.conditions = set_condition(status.conditions, condition, ctx.clock.now())
            try:
                ctx.pods.remember(
                    await ctx.client.update_status(current.model_copy(update={"status": status}))
                )
                return
            except NotFound:
                return
            except Conflict:
                current = await ctx.client.get(
                    Pod, pod.metadata.name, pod.metadata.namespace or "default"
                )
                ctx.pods.remember(current)
