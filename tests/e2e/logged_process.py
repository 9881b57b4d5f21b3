"""The lifecycle of a process an e2e test or benchmark starts, written once: started with its
output in a log file of its own per start, and stopped by pid — SIGTERM, a bounded wait, then
SIGKILL and a wait — so that a process which ignores SIGTERM or hangs is reported and never
left running behind the test.

`agent_harness.ShoalServer` and `agent_harness.ShoalAgent` are built on `LoggedProcess`.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

KILL_WAIT = 10.0  # seconds: SIGKILL cannot be ignored; this only bounds a stuck kernel


def kill_by_pid(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL and reap it (as after a crash, whatever it had started stays behind)."""
    process.send_signal(signal.SIGKILL)  # Popen signals its pid, and not once it is reaped
    process.wait(timeout=KILL_WAIT)


def stop_by_pid(process: subprocess.Popen[bytes], timeout: float, what: str) -> int:
    """SIGTERM and wait up to `timeout` for the exit code. A process still running then is
    SIGKILLed and reaped, and the stop fails: ignoring SIGTERM is a bug to report, but only
    once the process is gone."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_by_pid(process)
            raise AssertionError(f"{what} ignored SIGTERM for {timeout:g}s") from None
    return process.returncode


class LoggedProcess:
    """One process at a time, restartable; the n-th start logs to `<log_dir>/<log_name>-<n>.log`
    (stdout and stderr), so a restart keeps the earlier runs' logs."""

    def __init__(self, what: str, log_dir: Path, log_name: str) -> None:
        """`what` names the process in failures ("shoal server")."""
        self.what = what
        self.log_dir, self.log_name = log_dir, log_name
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def launch(self, command: list[str], env: dict[str, str]) -> None:
        """Start `command` (not waiting for anything: the caller knows what ready means)."""
        self.starts += 1
        with self.log_path().open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )

    def log_path(self) -> Path:
        return self.log_dir / f"{self.log_name}-{self.starts}.log"

    def log(self) -> str:
        """What the latest start wrote so far ("" before the first)."""
        path = self.log_path()
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def crash(self) -> None:
        """kill -9: what it started stays behind, as after a real crash."""
        assert self.process is not None
        kill_by_pid(self.process)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, the graceful path; SIGKILL and a failure after `timeout` (see stop_by_pid).
        Returns the exit code (also when it had exited already)."""
        assert self.process is not None
        return stop_by_pid(self.process, timeout, self.what)
