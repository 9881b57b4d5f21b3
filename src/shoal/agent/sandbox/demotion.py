"""Failing pods yield the CPU: a sandboxed pod whose cgroup saw an OOM kill is demoted, and so is
its next run when it starts within `DEMOTION_SECONDS` of that kill (a crash loop restarted by
policy).

Demoted means its cgroup's CPU becomes idle (`PodCgroup.demote`: on v1 a top-level group with
cpu.idle=1 beside the agent's parent): any other task waking on a CPU the pod holds preempts it
at once instead of waiting up to a scheduler tick, and the pod gets CPU only while nothing else
wants it. A healthy pod is never demoted, so its CPU request keeps its meaning; a pod that is
being OOM-killed is failing anyway, and its restarts and allocations then cost its neighbours'
latency nothing on the CPU (bench/neighbour_isolation.py measured 1.9-2.4x -> 1.0-1.3x for a
neighbour's p99 beside an OOM loop). A demoted run stays demoted until it exits.

Called by the sandbox driver: `watch` runs beside each pod's process until it exits; `record`
is told of the OOM kills its exit showed. The agent hears of each demotion (`notify`) and puts a
Warning Event `Demoted` on the pod.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from shoal.agent.sandbox.cgroups import CgroupError, PodCgroup

LOG = logging.getLogger(__name__)
DEMOTION_SECONDS = 300.0  # a run started this soon after the pod's last OOM kill is demoted
POLL_SECONDS = 1.0  # how often a running pod's OOM counter is read (one small file)
PLACEMENT_POLLS, PLACEMENT_POLL_SECONDS = 100, 0.02  # up to 2 s for a new run to be placed


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

    def record(self, pod_uid: str) -> None:
        """The pod's cgroup showed an OOM kill now. Expired records of other pods (deleted
        ones too) are dropped here, so the table stays as small as the recent kills."""
        now = self._clock()
        expired = [uid for uid, at in self._last_kill.items() if now - at > DEMOTION_SECONDS]
        for uid in expired:
            del self._last_kill[uid]
        self._last_kill[pod_uid] = now

    def recently_killed(self, pod_uid: str) -> bool:
        last = self._last_kill.get(pod_uid)
        return last is not None and self._clock() - last <= DEMOTION_SECONDS

    async def watch(self, pod_uid: str, name: str, cgroup: PodCgroup) -> None:
        """Until cancelled: demote the pod at once if it was OOM-killed recently (as soon as
        its first process has joined its cgroup), else at its first OOM kill; once demoted,
        every poll moves a process that joined the pod's normal cgroup since."""
        seen = cgroup.oom_kills()
        why = "its last run was OOM-killed" if self.recently_killed(pod_uid) else None
        if why is not None:
            for _ in range(PLACEMENT_POLLS):  # the launcher places itself just after the spawn
                moved = self._demote(pod_uid, name, cgroup, why, first=True)
                if moved is None:
                    return
                if moved:
                    break
                await asyncio.sleep(PLACEMENT_POLL_SECONDS)
        while True:
            await asyncio.sleep(POLL_SECONDS)
            kills = cgroup.oom_kills()
            first = False
            if kills > seen:
                seen, first = kills, why is None
                self.record(pod_uid)
                why = f"the kernel OOM-killed {kills} of its processes"
            if why is not None and self._demote(pod_uid, name, cgroup, why, first=first) is None:
                return

    def _demote(
        self, pod_uid: str, name: str, cgroup: PodCgroup, why: str, *, first: bool
    ) -> bool | None:
        """Whether a process was moved; None when demoting failed (logged once: the watch
        then ends, the pod runs on as it was)."""
        try:
            moved = cgroup.demote()
        except CgroupError as error:
            LOG.warning("pod %s could not be demoted (%s): %s", name, why, error)
            return None
        if moved and first:
            LOG.warning("pod %s demoted to idle CPU priority: %s", name, why)
            if self._notify is not None:
                self._notify(pod_uid, why)
        return moved
