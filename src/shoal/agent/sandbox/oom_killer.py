"""The agent, not the kernel, kills at a sandboxed pod's memory limit, on cgroup v1.

cgroup v1 lets user space take the decision: with `memory.oom_control` oom_kill_disable=1, a
task at the limit waits (using no CPU) instead of the kernel killing, and an eventfd registered
through `cgroup.event_control` wakes the agent at once. The agent then kills the process the
kernel would have chosen (its memory cgroup badness: resident + swapped + page-table pages plus
oom_score_adj scaled to the limit; -1000 is never chosen) with SIGKILL: the same victim and the
same OOMKilled on the pod. What it changes: the kernel logs
each of its OOM kills at KERN_ERR, and on a node whose console is a serial port (most cloud VMs
boot with console=ttyS0) each such line holds a CPU for 0.5-2 ms with nothing able to preempt
it, in the middle of the neighbours' requests; the agent's kill logs nothing. And the agent
learns of the kill when it happens (the pod is demoted at once, `sandbox.demotion`) instead of
at its next poll of the OOM counter.

cgroup v2 has no such switch (memory.oom.group only widens a kill), so there the kernel kills
and the agent counts memory.events. Where the kernel refuses the switch (v1's oom_control is
deprecated and may go), `take_over` returns None and the kernel's killer stays in charge.

When the agent lets go of a pod (its run ended, the agent stops, or the watch failed),
`release` hands the kills back to the kernel, which also wakes any task waiting at the limit
(such a task cannot be frozen: `PodCgroupV1.kill_all` releases before it freezes). After a
`kill -9` of the agent a pod at its limit waits instead of dying; the restarted agent re-adopts
it, takes over again and resolves what is pending. Each kill is noted in the pod's `KillLedger`
(a file under the agent's data directory) before the signal is sent, so a kill made just
before the agent died still reads OOMKilled when the next agent sees the run end.

Called by the sandbox driver (`take_over` at each start and re-adoption, `close` at exit; the
ledger cleared at a run's start, read and removed at its end) and by the OOM watch in
`sandbox.demotion` (`wait`, then `resolve`; `release` if it fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from shoal.agent.drivers.groups import open_pidfd, readable, wait_pid_exit
from shoal.agent.sandbox.cgroupfs import parse_flat_keyed, parse_pid_list
from shoal.agent.sandbox.cgroups import read_file, read_number, release_oom_kills

LOG = logging.getLogger(__name__)
EXIT_WAIT_SECONDS = 2.0  # how long a victim may take to exit before the next step
RETRY_SECONDS = 0.05  # after a victim left: time for the waiting tasks to retry their charge
UNLIMITED = 2**62  # v1 reports "no limit" as a number near 2**63
PAGE = os.sysconf("SC_PAGE_SIZE")
STATUS_PAGES = ("RssAnon", "RssFile", "RssShmem", "VmSwap", "VmPTE")  # kB in /proc/<pid>/status


def badness(status: str, adj: int, limit_pages: int) -> int | None:
    """The kernel's OOM badness of a process in a memory cgroup (mm/oom_kill.c): resident,
    swapped and page-table pages, plus oom_score_adj per mille of the limit; None for -1000,
    which the kernel never kills (pure: `status` is /proc/<pid>/status)."""
    if adj <= -1000:
        return None
    kilobytes = 0
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in STATUS_PAGES:
            kilobytes += int(value.split()[0])
    return kilobytes * 1024 // PAGE + adj * (limit_pages // 1000)


def choose_victim(candidates: Mapping[int, int]) -> int | None:
    """The pid with the highest badness ({pid: badness}), the newest on a tie (pure)."""
    if not candidates:
        return None
    return max(candidates, key=lambda pid: (candidates[pid], pid))


def kill_due(under_oom: bool, events: int, events_at_last_kill: int | None) -> bool:
    """Whether to kill now: tasks wait at the limit and, unless this is the run's first kill,
    the kernel reported a new OOM since the last one. The second half matters right after a
    kill: a waiter stays counted in under_oom until it runs again, which its CPU quota or the
    idle group can delay well past the victim's exit, while a task that still finds no memory
    takes the OOM lock the victim released and the kernel reports it (pure)."""
    return under_oom and (events_at_last_kill is None or events > events_at_last_kill)


def memory_limited(memory_dir: Path) -> bool:
    """Whether the cgroup has a memory limit (a re-adopted pod: take its kills over again)."""
    limit = read_number(memory_dir / "memory.limit_in_bytes")
    return 0 < limit < UNLIMITED


class KillLedger:
    """The agent's OOM kills in one run of a pod, one byte each in a file that outlives the
    agent's process (not fsync'ed: a crash of the machine ends the run too). The file is read
    once, when the ledger is made (a re-adopting agent learns the kills of the one before);
    after that the count lives in memory, so reading it costs no I/O. No path: in memory only.
    A file that cannot be written (a full disk) never stops a kill: a warning is logged."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._kills = _file_size(path) if path is not None else 0
        self._last_noted = False  # the last `add` reached the file

    def count(self) -> int:
        """This run's kills, a previous agent's included."""
        return self._kills

    def add(self) -> None:
        """One more kill; written before the signal is sent."""
        self._kills += 1
        self._last_noted = False
        if self._path is not None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                with self._path.open("ab") as ledger:
                    ledger.write(b"k")
                self._last_noted = True
            except OSError as error:
                LOG.warning("cannot note an OOM kill in %s: %s", self._path, error)

    def take_back(self) -> None:
        """The last `add` killed nobody (its victim was already gone)."""
        self._kills -= 1
        if self._path is not None and self._last_noted:
            with contextlib.suppress(OSError):
                os.truncate(self._path, self._path.stat().st_size - 1)
        self._last_noted = False

    def clear(self) -> None:
        """A new run starts, or its end has been counted."""
        self._kills = 0
        if self._path is not None:
            try:
                self._path.unlink(missing_ok=True)
            except OSError as error:
                LOG.warning("cannot remove %s: %s", self._path, error)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class AgentOomKiller:
    """OOM kills in one pod's v1 memory cgroup, by the agent. `kills` counts the run's, also
    those of an agent that ran it before this one (its `ledger`)."""

    def __init__(self, memory_dir: Path, eventfd: int, ledger: KillLedger) -> None:
        self._dir = memory_dir
        self._eventfd: int | None = eventfd
        self._events = 0  # OOMs the kernel reported so far
        self._at_last_kill: int | None = None  # `_events` when the last victim was chosen
        self._ledger = ledger

    @property
    def kills(self) -> int:
        return self._ledger.count()

    @classmethod
    def take_over(cls, memory_dir: Path, ledger: KillLedger | None = None) -> AgentOomKiller | None:
        """Switch the kernel's killer off for this cgroup and listen for its OOM events; None
        (kernel's killer left on, a warning logged) when the kernel refuses either step. Kills
        are noted in `ledger` (in memory only when None)."""
        control = memory_dir / "memory.oom_control"
        eventfd = None
        try:
            eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            control_fd = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
            try:
                (memory_dir / "cgroup.event_control").write_text(f"{eventfd} {control_fd}")
            finally:
                os.close(control_fd)
            control.write_text("1")
        except OSError as error:
            if eventfd is not None:
                os.close(eventfd)
            release_oom_kills(memory_dir)
            LOG.warning("the kernel keeps OOM kills in %s (%s)", memory_dir, error.strerror)
            return None
        return cls(memory_dir, eventfd, ledger or KillLedger())

    def _drain(self) -> None:
        """Count the OOMs the kernel reported and nobody read yet."""
        if self._eventfd is not None:
            with contextlib.suppress(BlockingIOError):
                self._events += os.eventfd_read(self._eventfd)

    def _due(self) -> bool:
        self._drain()
        control = parse_flat_keyed(read_file(self._dir / "memory.oom_control"))
        if control.get("oom_kill_disable") != 1:
            return False  # released: the kernel decides
        return kill_due(control.get("under_oom") == 1, self._events, self._at_last_kill)

    async def wait(self, at_most: float) -> None:
        """Until the kernel reports an OOM in the cgroup, or `at_most` seconds."""
        if self._eventfd is None:
            await asyncio.sleep(at_most)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(readable(self._eventfd), at_most)
        self._drain()

    async def resolve(self) -> bool:
        """When a kill is due (`kill_due`): SIGKILL the kernel's choice of victim and wait until
        it has left the cgroup (its memory is then uncharged and the waiters retry). One kill
        per call: the watch calls again at the kernel's next report. Whether it killed."""
        if not self._due():
            return False
        limit_pages = read_number(self._dir / "memory.limit_in_bytes") // PAGE
        candidates = {}
        for pid in parse_pid_list(read_file(self._dir / "cgroup.procs")):
            points = _badness_of(pid, limit_pages)
            if points is not None:
                candidates[pid] = points
        victim = choose_victim(candidates)
        if victim is None:
            return False
        self._at_last_kill = self._events
        pidfd = open_pidfd(victim)  # before the kill: it pins this process, not a reuse
        self._ledger.add()  # before the kill: an agent dying right after it still counts it
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            self._ledger.take_back()
            if pidfd is not None:
                os.close(pidfd)
            return False  # gone meanwhile: its memory is free
        with contextlib.suppress(TimeoutError):  # exited = out of the cgroup, memory uncharged
            await asyncio.wait_for(wait_pid_exit(victim, pidfd), EXIT_WAIT_SECONDS)
        await asyncio.sleep(RETRY_SECONDS)
        return True

    def release(self) -> None:
        """The kernel kills at the limit again (the watch failed); `wait` still works,
        `resolve` then does nothing."""
        release_oom_kills(self._dir)

    def close(self) -> None:
        """Release, and stop listening. Only once the watch no longer waits on the eventfd."""
        self.release()
        if self._eventfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._eventfd)
            self._eventfd = None


def _badness_of(pid: int, limit_pages: int) -> int | None:
    """`badness` of a live process, None once it is gone (or unkillable)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        adj = int(Path(f"/proc/{pid}/oom_score_adj").read_text())
    except (OSError, ValueError):
        return None
    return badness(status, adj, limit_pages)
