"""ProcessDriver: a pod is a plain process in its own session (Nomad's raw_exec).

Called by the agent runner through the `Driver` protocol. Each pod's process starts with
start_new_session=True, so it leads a new process group (pgid == pid) that holds its children;
stop signals the whole group: SIGTERM, grace period, SIGKILL. When the leader exits, whatever is
left of its group is killed too (as when a container's init dies): no leaked processes.
Processes that call setsid() escape the group; only the sandbox driver's cgroup catches them.

Exit is awaited on a pidfd registered with the event loop (no thread per child, no busy loop);
the child is then reaped with waitpid through its Popen object. An adopted process (after an
agent restart) is not our child: its exit is seen on the pidfd too, but its exit code is lost,
and the status says so ("Unknown exit (adopted)").
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from shoal.agent.drivers.base import (
    ExitStatus,
    ProcessSpec,
    StartError,
    TaskHandle,
    TaskInfo,
    build_environment,
)
from shoal.agent.drivers.groups import (
    create_time_of,
    group_members,
    is_alive,
    is_same_process,
    kill_group,
    kill_group_and_wait,
    open_pidfd,
    wait_group_empty,
    wait_pid_exit,
)

REASON_COMPLETED = "Completed"
REASON_ERROR = "Error"
REASON_UNKNOWN_EXIT = "UnknownExit"
REASON_EXECUTABLE_NOT_FOUND = "ExecutableNotFound"
REASON_START_ERROR = "StartError"
ADOPTED_EXIT_MESSAGE = "Unknown exit (adopted)"


@dataclass
class _Task:
    handle: TaskHandle
    popen: subprocess.Popen[bytes] | None  # None for an adopted process
    pidfd: int | None = None
    exited: asyncio.Task[ExitStatus] = field(init=False)


def _describe_exit(returncode: int) -> tuple[int | None, int | None, str, str]:
    if returncode < 0:
        signum = -returncode
        name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
        return None, signum, REASON_ERROR, f"killed by signal {name}"
    if returncode == 0:
        return 0, None, REASON_COMPLETED, "exited with code 0"
    return returncode, None, REASON_ERROR, f"exited with code {returncode}"


def resolve_executable(argv0: str, cwd: Path, env: Mapping[str, str]) -> str | StartError:
    """Find argv[0] as exec would (PATH of the pod's env; a path relative to its cwd)."""
    if "/" in argv0:
        candidate = Path(argv0) if Path(argv0).is_absolute() else cwd / argv0
        if not candidate.exists():
            return StartError(REASON_EXECUTABLE_NOT_FOUND, f"{argv0}: no such file")
        if candidate.is_dir() or not os.access(candidate, os.X_OK):
            return StartError(REASON_START_ERROR, f"{argv0}: not an executable file")
        return str(candidate)
    found = shutil.which(argv0, path=env.get("PATH", os.defpath))
    if found is None:
        return StartError(
            REASON_EXECUTABLE_NOT_FOUND,
            f"{argv0}: executable file not found in PATH ({env.get('PATH', os.defpath)})",
        )
    return found


class ProcessDriver:
    """Driver for plain processes. `host_env` defaults to the agent's environment."""

    name = "process"

    def __init__(
        self, host_env: Mapping[str, str] | None = None, leftover_timeout: float = 5.0
    ) -> None:
        self._host_env = dict(os.environ if host_env is None else host_env)
        self._leftover_timeout = leftover_timeout
        self._tasks: dict[int, _Task] = {}

    async def start(self, spec: ProcessSpec) -> TaskHandle | StartError:
        if not spec.argv:
            return StartError(REASON_START_ERROR, "empty command")
        env = build_environment(spec, self._host_env)
        if not spec.cwd.is_dir():
            return StartError(REASON_START_ERROR, f"working directory {spec.cwd} does not exist")
        executable = resolve_executable(spec.argv[0], spec.cwd, env)
        if isinstance(executable, StartError):
            return executable
        try:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            log_fd = os.open(spec.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            return StartError(REASON_START_ERROR, f"cannot open log {spec.log_path}: {error}")
        try:
            # fork+exec is quick and synchronous anyway (asyncio's own subprocess does the same).
            popen = subprocess.Popen(  # noqa: ASYNC220
                spec.argv,
                executable=executable,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                cwd=spec.cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as error:
            return StartError(REASON_START_ERROR, f"{spec.argv[0]}: {error.strerror or error}")
        finally:
            os.close(log_fd)
        started_at = time.time()
        # Our unreaped child cannot be reused, so its create_time is readable even if it died.
        create_time = create_time_of(popen.pid) or started_at
        handle = TaskHandle(
            driver=self.name,
            pod_uid=spec.pod_uid,
            pid=popen.pid,
            pgid=popen.pid,
            create_time=create_time,
            started_at=started_at,
        )
        self._track(_Task(handle, popen))
        return handle

    def _track(self, task: _Task) -> None:
        task.exited = asyncio.get_running_loop().create_task(
            self._watch(task), name=f"shoal-process-{task.handle.pid}"
        )
        self._tasks[task.handle.pid] = task

    async def _watch(self, task: _Task) -> ExitStatus:
        handle = task.handle
        await wait_pid_exit(handle.pid, task.pidfd)
        finished_at = time.time()
        if task.popen is not None:
            # The pidfd said it exited, so the child is a zombie and poll() reaps it at once.
            returncode = task.popen.poll()
            if returncode is None:
                returncode = await asyncio.to_thread(task.popen.wait)
            exit_code, signum, reason, message = _describe_exit(returncode)
        else:
            exit_code, signum, reason = None, None, REASON_UNKNOWN_EXIT
            message = f"{ADOPTED_EXIT_MESSAGE}: pid {handle.pid} was not our child"
        # The leader is gone: like a container whose init died, the rest of the group goes too.
        await kill_group_and_wait(handle.pgid, self._leftover_timeout)
        return ExitStatus(exit_code, signum, reason, handle.started_at, finished_at, message)

    def _task(self, handle: TaskHandle) -> _Task:
        try:
            return self._tasks[handle.pid]
        except KeyError:
            raise LookupError(f"pid {handle.pid} is not managed by this driver") from None

    async def wait(self, handle: TaskHandle) -> ExitStatus:
        return await asyncio.shield(self._task(handle).exited)

    async def signal(self, handle: TaskHandle, signum: int) -> None:
        task = self._task(handle)
        if not task.exited.done():
            kill_group(handle.pgid, signum)

    async def stop(self, handle: TaskHandle, grace_seconds: float) -> ExitStatus:
        """SIGTERM the group, wait up to `grace_seconds` for all of it, then SIGKILL the group."""
        task = self._task(handle)
        if not task.exited.done():
            kill_group(handle.pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace_seconds
            done, _ = await asyncio.wait({task.exited}, timeout=max(grace_seconds, 0))
            remaining = max(deadline - time.monotonic(), 0)
            if not done or not await wait_group_empty(handle.pgid, remaining):
                kill_group(handle.pgid, signal.SIGKILL)
        status = await asyncio.shield(task.exited)
        await kill_group_and_wait(handle.pgid, self._leftover_timeout)
        self._tasks.pop(handle.pid, None)
        return status

    async def recover(self, handle: TaskHandle) -> TaskHandle | ExitStatus:
        """Re-adopt a process after an agent restart, only if pid AND start time match."""
        if handle.pid in self._tasks:
            return self._tasks[handle.pid].handle
        pidfd = open_pidfd(handle.pid)
        if is_same_process(handle.pid, handle.create_time):
            self._track(_Task(handle, None, pidfd))
            return handle
        if pidfd is not None:
            os.close(pidfd)
        now = time.time()
        if is_alive(handle.pid):
            message = (
                f"{ADOPTED_EXIT_MESSAGE}: pid {handle.pid} now belongs to another process "
                "(start time differs); not adopted"
            )
        else:
            message = f"{ADOPTED_EXIT_MESSAGE}: pid {handle.pid} exited while the agent was down"
            # Its group may outlive it; the group id cannot have been reused while members live.
            if not is_alive(handle.pgid) and group_members(handle.pgid):
                await kill_group_and_wait(handle.pgid, self._leftover_timeout)
        return ExitStatus(None, None, REASON_UNKNOWN_EXIT, handle.started_at, now, message)

    async def inspect(self, handle: TaskHandle) -> TaskInfo:
        task = self._tasks.get(handle.pid)
        running = task is not None and not task.exited.done()
        pids = group_members(handle.pgid) if running else []
        cpu_seconds, memory_bytes = 0.0, 0
        for pid in pids:
            try:
                process = psutil.Process(pid)
                times = process.cpu_times()
                cpu_seconds += times.user + times.system
                memory_bytes += process.memory_info().rss
            except psutil.Error:
                continue
        return TaskInfo(running, pids, cpu_seconds, memory_bytes)

    def managed(self) -> list[TaskHandle]:
        """Handles this driver currently watches (started or recovered, not yet stopped)."""
        return [task.handle for task in self._tasks.values()]
