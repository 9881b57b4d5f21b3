"""The agent, not the kernel, kills at a sandboxed pod's memory limit, on cgroup v1.

cgroup v1 lets user space take the decision: with `memory.oom_control` oom_kill_disable=1, a
task at the limit waits (using no CPU) instead of the kernel killing, and an eventfd registered
through `cgroup.event_control` wakes the agent at once. The agent then kills the process the
kernel would have chosen (the highest /proc/<pid>/oom_score, which honours oom_score_adj) with
SIGKILL: the same victim and the same OOMKilled on the pod. What it changes: the kernel logs
each of its OOM kills at KERN_ERR, and on a node whose console is a serial port (most cloud VMs
boot with console=ttyS0) each such line holds a CPU for 0.5-2 ms with nothing able to preempt
it, in the middle of the neighbours' requests; the agent's kill logs nothing. And the agent
learns of the kill when it happens (the pod is demoted at once, `sandbox.demotion`) instead of
at its next poll of the OOM counter.

cgroup v2 has no such switch (memory.oom.group only widens a kill), so there the kernel kills
and the agent counts memory.events. Where the kernel refuses the switch (v1's oom_control is
deprecated and may go), `take_over` returns None and the kernel's killer stays in charge.

While the agent is down, a pod at its limit waits instead of dying; the restarted agent
re-adopts it, takes over again and resolves what is pending.

Called by the sandbox driver (`take_over` at each start and re-adoption, `close` at exit) and by
the OOM watch in `sandbox.demotion` (`wait`, then `resolve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from shoal.agent.sandbox.cgroupfs import parse_flat_keyed, parse_pid_list

LOG = logging.getLogger(__name__)
EXIT_WAIT_SECONDS, EXIT_POLL_SECONDS = 2.0, 0.005  # how long a victim may take to leave
RETRY_SECONDS = 0.05  # after a victim left: time for the waiting tasks to retry their charge
AT_LIMIT_BYTES = 2**20  # usage this close to the limit (or 1 % of it) counts as at the limit


def choose_victim(candidates: Mapping[int, tuple[int, int]]) -> int | None:
    """The pid to kill from {pid: (oom_score, resident pages)}: the kernel's choice (highest
    score), the larger process on a tie, None when there is nobody (pure)."""
    if not candidates:
        return None
    return max(candidates, key=lambda pid: (*candidates[pid], pid))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _candidate(pid: int) -> tuple[int, int] | None:
    """(oom_score, resident pages) of a live process, None once it is gone."""
    try:
        score = int(Path(f"/proc/{pid}/oom_score").read_text())
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return score, resident


def agent_kills_oom(memory_dir: Path) -> bool:
    """Whether an agent took the cgroup's OOM kills over (a re-adopted pod: listen again)."""
    control = parse_flat_keyed(_read(memory_dir / "memory.oom_control"))
    return control.get("oom_kill_disable") == 1


class AgentOomKiller:
    """OOM kills in one pod's v1 memory cgroup, by the agent. `kills` counts this run's."""

    def __init__(self, memory_dir: Path, eventfd: int) -> None:
        self._dir = memory_dir
        self._eventfd = eventfd
        self.kills = 0

    @classmethod
    def take_over(cls, memory_dir: Path) -> AgentOomKiller | None:
        """Switch the kernel's killer off for this cgroup and listen for its OOM events; None
        (kernel's killer left on, a warning logged) when the kernel refuses either step."""
        control = memory_dir / "memory.oom_control"
        eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            control_fd = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
            try:
                (memory_dir / "cgroup.event_control").write_text(f"{eventfd} {control_fd}")
            finally:
                os.close(control_fd)
            control.write_text("1")
        except OSError as error:
            os.close(eventfd)
            with contextlib.suppress(OSError):
                control.write_text("0")
            LOG.warning("the kernel keeps OOM kills in %s (%s)", memory_dir, error.strerror)
            return None
        return cls(memory_dir, eventfd)

    def _pending(self) -> bool:
        """Tasks wait at the limit: under_oom, with usage still at the limit. The second half
        matters right after a kill: a waiter marks under_oom until it runs again, which a CPU
        quota can delay past the victim's exit, while the victim's memory is already gone."""
        if parse_flat_keyed(_read(self._dir / "memory.oom_control")).get("under_oom") != 1:
            return False
        usage = int(_read(self._dir / "memory.usage_in_bytes").strip() or 0)
        limit = int(_read(self._dir / "memory.limit_in_bytes").strip() or 0)
        return usage + max(AT_LIMIT_BYTES, limit // 100) >= limit

    async def wait(self, at_most: float) -> None:
        """Until the kernel reports an OOM in the cgroup, or `at_most` seconds."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not woken.done():
                woken.set_result(None)

        loop.add_reader(self._eventfd, readable)
        try:
            await asyncio.wait_for(woken, at_most)
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(self._eventfd)
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._eventfd)

    async def resolve(self) -> int:
        """While tasks wait at the limit: SIGKILL the kernel's choice of victim and wait until
        it has left the cgroup (its memory is then uncharged and the waiters retry). Returns
        how many it killed."""
        killed: set[int] = set()
        while self._pending():
            pids = parse_pid_list(_read(self._dir / "cgroup.procs"))
            candidates = {
                pid: found
                for pid in pids
                if pid not in killed and (found := _candidate(pid)) is not None
            }
            victim = choose_victim(candidates)
            if victim is None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
            killed.add(victim)
            self.kills += 1
            await self._gone(victim)
            await asyncio.sleep(RETRY_SECONDS)
        return len(killed)

    async def _gone(self, pid: int) -> None:
        for _ in range(round(EXIT_WAIT_SECONDS / EXIT_POLL_SECONDS)):
            if pid not in parse_pid_list(_read(self._dir / "cgroup.procs")):
                return
            await asyncio.sleep(EXIT_POLL_SECONDS)

    def close(self) -> None:
        """Stop listening (the cgroup's setting stays: it goes with the cgroup)."""
        with contextlib.suppress(OSError):
            os.close(self._eventfd)
