"""logged_process: a real child process per test — its log per start, the graceful stop, and
the stop of a process that ignores SIGTERM (killed by pid, reported, never left running)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import psutil
import pytest
from agent_harness import wait_for
from logged_process import LoggedProcess

pytestmark = pytest.mark.e2e

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ignoring', flush=True); time.sleep(120)"
)
WAITS = "import time; print('waiting', flush=True); time.sleep(120)"


def started(tmp_path: Path, code: str, ready: str) -> LoggedProcess:
    child = LoggedProcess("the child", tmp_path, "child")
    child.launch([sys.executable, "-c", code], {})
    wait_for(f"the child to print {ready!r}", lambda: ready in child.log())
    return child


def test_a_process_that_ignores_sigterm_is_killed_and_the_stop_fails(tmp_path: Path) -> None:
    child = started(tmp_path, IGNORES_SIGTERM, "ignoring")
    pid = child.pid
    try:
        with pytest.raises(AssertionError, match=r"the child ignored SIGTERM for 0\.5s"):
            child.stop(timeout=0.5)
        left_running = child.running()
    finally:
        if child.running():  # only if the stop under test failed to kill it
            child.crash()
    assert not left_running
    assert child.process is not None and child.process.returncode == -signal.SIGKILL
    assert not psutil.pid_exists(pid)


def test_a_graceful_stop_returns_the_exit_code_and_each_start_logs_apart(tmp_path: Path) -> None:
    child = started(tmp_path, WAITS, "waiting")
    assert child.stop() == -signal.SIGTERM
    assert child.stop() == -signal.SIGTERM  # stopping a stopped process only reports it
    assert not child.running()
    child.launch([sys.executable, "-c", "print('second run')"], {})
    assert child.process is not None and child.process.wait(timeout=30) == 0
    assert child.stop() == 0 and child.log() == "second run\n"
    assert (tmp_path / "child-1.log").read_text() == "waiting\n"
    assert child.log_path() == tmp_path / "child-2.log"


def test_a_crash_is_a_sigkill(tmp_path: Path) -> None:
    child = started(tmp_path, IGNORES_SIGTERM, "ignoring")
    child.crash()
    assert not child.running()
    assert child.process is not None and child.process.returncode == -signal.SIGKILL
