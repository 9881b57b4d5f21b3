"""Process-group and pid primitives shared by drivers: who is in a group, is a pid still ours,
wait for a pid to exit (or any fd to become readable) without a busy loop.

Linux only (reads /proc, uses pidfd). Zombies count as gone everywhere: on some machines pid 1
does not reap orphans, so an exited grandchild may linger as a zombie that can do no harm.

Limit of process groups: a process that calls setsid() (or setpgid) leaves the pod's group and
is out of reach of `kill_group`; the sandbox driver's per-pod cgroup closes that hole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import psutil

# Kernel start time resolution is one clock tick (10 ms); two processes with the same pid less
# than that apart cannot happen in practice, so anything closer is the same process.
CREATE_TIME_TOLERANCE = 0.005


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat[stat.rfind(")") + 2 :].split()


def is_alive(pid: int) -> bool:
    """The pid exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids whose process group is `pgid`."""
    # The usual answer after a pod's process ended is "nobody": signal 0 says so without
    # reading every /proc/<pid>/stat on the machine (a scan that blocked the server's event
    # loop for milliseconds per call, measured with 30 crash-looping pods).
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # someone is there (another uid in a sandbox): look closer
    members: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def kill_group(pgid: int, signum: int) -> bool:
    """Signal every process of the group; False when nobody (alive) was there to signal."""
    if not group_members(pgid):
        return False
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def create_time_of(pid: int) -> float | None:
    """psutil's process start time (seconds since the epoch), None if the pid is gone."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_same_process(pid: int, create_time: float) -> bool:
    """True only if `pid` is alive and started at `create_time`: never trust a reused pid."""
    if not is_alive(pid):
        return False
    actual = create_time_of(pid)
    return actual is not None and abs(actual - create_time) < CREATE_TIME_TOLERANCE


def open_pidfd(pid: int) -> int | None:
    """A pidfd for `pid` (None if it is gone or the kernel has no pidfd). Open it BEFORE
    checking the process's identity: the fd then pins that very process, not a later reuse."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


async def wait_pid_exit(pid: int, pidfd: int | None = None, poll_seconds: float = 0.1) -> None:
    """Return when `pid` has exited (zombie or reaped). A pidfd also works for processes that
    are not our children (adopted ones); without one (old kernel) this polls /proc.
    Takes ownership of `pidfd` (closes it)."""
    if pidfd is None:
        pidfd = open_pidfd(pid)
    if pidfd is None:
        # Gone already, or no pidfd on this kernel: polling is the only way for a non-child.
        while is_alive(pid):  # noqa: ASYNC110
            await asyncio.sleep(poll_seconds)
        return
    try:
        await readable(pidfd)
    finally:
        os.close(pidfd)


async def readable(fd: int) -> None:
    """Return when `fd` is readable (a pidfd whose process exited, an eventfd that was
    signalled); the fd is watched by the running loop meanwhile, also when cancelled."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def _on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, _on_readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def wait_group_empty(pgid: int, limit_seconds: float, poll_seconds: float = 0.05) -> bool:
    """Poll until no live process is left in the group; False on timeout. Members of a group
    are not our children, so there is nothing to wait on but /proc."""
    deadline = time.monotonic() + limit_seconds
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll_seconds)
    return True


async def kill_group_and_wait(pgid: int, limit_seconds: float = 5.0) -> bool:
    """SIGKILL whatever is left in the group and wait until it is gone."""
    with contextlib.suppress(PermissionError):
        kill_group(pgid, signal.SIGKILL)
    return await wait_group_empty(pgid, limit_seconds)
