"""Failing pods yield the CPU: a sandboxed pod whose cgroup saw an OOM kill is demoted, and so is
its next run when it starts within `DEMOTION_SECONDS` of that kill (a crash loop restarted by
policy).

Demoted means its cgroup's CPU becomes idle (`PodCgroup.demote`: on v1 a top-level group with
cpu.idle=1 beside the agent's parent): any other task waking on a CPU the pod holds preempts it
at once instead of waiting up to a scheduler tick, and the pod gets CPU only while nothing else
wants it. A healthy pod is never demoted, so its CPU request keeps its meaning; a pod that is
being OOM-killed is failing anyway, and its restarts and allocations then wait for the CPU its
neighbours do not use (bench/bench_sandbox.py: a neighbour's p99 beside a pod OOM-killed and
restarted by policy 1.36-2.70x before, 0.96-1.21x with demotion and the agent's own OOM kills;
docs/sandbox.md). A demoted run stays demoted until it exits; a run that starts demoted is
placed in the idle group by its launcher, so not even its start competes.

Called by the sandbox driver: `demote_at_start` before each start, `watch` beside each pod's
process until it exits (it also drives the agent's OOM killer on v1, `oom_killer`); `record` is
told of the OOM kills its exit showed. The agent hears when a pod becomes demoted (`notify`,
once: not again for each of its runs that starts demoted, until a run starts undemoted) and
puts a Warning Event `Demoted` on the pod.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from shoal.agent.sandbox.cgroups import CgroupError, PodCgroup
from shoal.agent.sandbox.oom_killer import AgentOomKiller

LOG = logging.getLogger(__name__)
DEMOTION_SECONDS = 300.0  # a run started this soon after the pod's last OOM kill is demoted
POLL_SECONDS = 1.0  # how often a running pod's OOM counters are read (a few small files)


class OomDemotion:
    """The last OOM kill seen per pod (by uid), and the watch that demotes."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        notify: Callable[[str, str], None] | None = None,
    ) -> None:
        """`notify(pod_uid, why)` when a run is demoted (the agent puts an Event on the pod)."""
        self._clock = clock
        self._notify = notify
        self._last_kill: dict[str, float] = {}
        self._told: set[str] = set()  # pods whose demotion was announced, until it ends

    def record(self, pod_uid: str) -> None:
        """The pod's cgroup showed an OOM kill now. Expired records of other pods (deleted
        ones too) are dropped here, so the table stays as small as the recent kills."""
        now = self._clock()
        expired = [uid for uid, at in self._last_kill.items() if now - at > DEMOTION_SECONDS]
        for uid in expired:
            del self._last_kill[uid]
            self._told.discard(uid)
        self._last_kill[pod_uid] = now

    def recently_killed(self, pod_uid: str) -> bool:
        last = self._last_kill.get(pod_uid)
        return last is not None and self._clock() - last <= DEMOTION_SECONDS

    def demote_at_start(self, pod_uid: str, name: str, cgroup: PodCgroup) -> str | None:
        """Before a run starts: when the pod was OOM-killed recently, prepare its cgroup so the
        run is placed demoted from its first instruction (`PodCgroup.demote_before_start`).
        The reason to pass to `watch`, or None (not recent, or the kernel cannot: logged)."""
        if not self.recently_killed(pod_uid):
            self._told.discard(pod_uid)  # its demotion is over: a new one is news again
            return None
        try:
            demoted = cgroup.demote_before_start()
        except CgroupError as error:
            LOG.warning("pod %s could not be demoted: %s", name, error)
            return None
        return "its last run was OOM-killed" if demoted else None

    async def watch(
        self,
        pod_uid: str,
        name: str,
        cgroup: PodCgroup,
        killer: AgentOomKiller | None = None,
        demoted: str | None = None,
    ) -> None:
        """Until cancelled: kill at the limit when the agent does it for the kernel (`killer`,
        cgroup v1), and demote the pod at its first OOM kill unless the run started demoted
        (`demoted`: the reason `demote_at_start` gave). Wakes at the killer's OOM event, and
        reads the OOM counters every POLL_SECONDS in any case. If it fails, the kernel kills at
        the pod's limit again (`killer.release`), so no pod is left without a killer."""
        try:
            await self._watch(pod_uid, name, cgroup, killer, demoted)
        except Exception:
            LOG.exception("the OOM watch of pod %s failed; the kernel kills at its limit", name)
            if killer is not None:
                killer.release()

    async def _watch(
        self,
        pod_uid: str,
        name: str,
        cgroup: PodCgroup,
        killer: AgentOomKiller | None,
        demoted: str | None,
    ) -> None:
        if demoted is not None:
            self._announce(pod_uid, name, demoted)
        seen = cgroup.oom_kills()
        while True:
            if killer is not None:
                await killer.resolve()
            kills = cgroup.oom_kills() + (killer.kills if killer is not None else 0)
            if kills > seen:
                seen = kills
                self.record(pod_uid)
                if demoted is None:
                    demoted = f"{kills} of its processes were OOM-killed at its memory limit"
                    self._demote(pod_uid, name, cgroup, demoted)
            if killer is not None:
                await killer.wait(POLL_SECONDS)
            else:
                await asyncio.sleep(POLL_SECONDS)

    def _demote(self, pod_uid: str, name: str, cgroup: PodCgroup, why: str) -> None:
        """Demote the running pod, once per run: a failure is logged, not retried."""
        try:
            moved = cgroup.demote()
        except CgroupError as error:
            LOG.warning("pod %s could not be demoted (%s): %s", name, why, error)
            return
        if moved:  # False: nothing left to move, the run is ending; the next starts demoted
            self._announce(pod_uid, name, why)

    def _announce(self, pod_uid: str, name: str, why: str) -> None:
        if pod_uid in self._told:  # a crash loop's next run: the same demotion goes on
            return
        self._told.add(pod_uid)
        LOG.warning("pod %s demoted to idle CPU priority: %s", name, why)
        if self._notify is not None:
            self._notify(pod_uid, why)
