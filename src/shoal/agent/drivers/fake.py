"""FakeDriver: an in-memory Driver for unit tests of the agent runner (no processes at all).

The test plays the processes: `exit(handle, code=..., signal=...)` ends a run, `fail_next_start`
makes the next start return a StartError, `alive` decides what `recover` may adopt. Every call
is recorded in `calls` so a test can assert the runner's sequence (start, stop with which grace).
"""

from __future__ import annotations

import asyncio
import itertools
import signal as signals
import time
from dataclasses import dataclass, field

from shoal.agent.drivers.base import ExitStatus, ProcessSpec, StartError, TaskHandle, TaskInfo


@dataclass
class _Run:
    spec: ProcessSpec | None
    exited: asyncio.Future[ExitStatus]


@dataclass
class FakeDriver:
    name: str = "fake"
    calls: list[tuple[str, object]] = field(default_factory=list)
    fail_next_start: StartError | None = None
    # What stop() does: exit on SIGTERM (code 0) unless the test says the process ignores it.
    ignores_sigterm: bool = False
    alive: set[int] = field(default_factory=set)
    runs: dict[int, _Run] = field(default_factory=dict)
    _pids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    async def start(self, spec: ProcessSpec) -> TaskHandle | StartError:
        self.calls.append(("start", spec))
        if self.fail_next_start is not None:
            error, self.fail_next_start = self.fail_next_start, None
            return error
        pid = next(self._pids)
        now = time.time()
        handle = TaskHandle(self.name, spec.pod_uid, pid, pid, now, now)
        self.runs[pid] = _Run(spec, asyncio.get_running_loop().create_future())
        self.alive.add(pid)
        return handle

    def exit(
        self, handle: TaskHandle, code: int | None = 0, signal: int | None = None
    ) -> ExitStatus:
        """End the run as a process would; returns the status `wait` will report."""
        reason = "Completed" if code == 0 and signal is None else "Error"
        status = ExitStatus(code, signal, reason, handle.started_at, time.time(), reason)
        run = self.runs[handle.pid]
        if not run.exited.done():
            run.exited.set_result(status)
        self.alive.discard(handle.pid)
        return status

    async def wait(self, handle: TaskHandle) -> ExitStatus:
        return await asyncio.shield(self.runs[handle.pid].exited)

    async def signal(self, handle: TaskHandle, signum: int) -> None:
        self.calls.append(("signal", (handle.pid, signum)))
        if signum == signals.SIGKILL or (signum == signals.SIGTERM and not self.ignores_sigterm):
            self.exit(handle, None, signum)

    async def stop(self, handle: TaskHandle, grace_seconds: float) -> ExitStatus:
        self.calls.append(("stop", (handle.pid, grace_seconds)))
        if not self.runs[handle.pid].exited.done():
            if self.ignores_sigterm:
                self.exit(handle, None, signals.SIGKILL)
            else:
                self.exit(handle, 0, None)
        return await self.wait(handle)

    async def recover(self, handle: TaskHandle) -> TaskHandle | ExitStatus:
        self.calls.append(("recover", handle.pid))
        if handle.pid in self.alive:
            if handle.pid not in self.runs:
                self.runs[handle.pid] = _Run(None, asyncio.get_running_loop().create_future())
            return handle
        message = f"Unknown exit (adopted): pid {handle.pid} is gone"
        return ExitStatus(None, None, "UnknownExit", handle.started_at, time.time(), message)

    async def inspect(self, handle: TaskHandle) -> TaskInfo:
        running = handle.pid in self.alive
        return TaskInfo(running, [handle.pid] if running else [])
