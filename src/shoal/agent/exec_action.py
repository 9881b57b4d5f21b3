"""Run a pod's `exec` handler (exec probes, preStop exec) in the pod's environment, bounded.

Called by `probe_checks` and `lifecycle`. The command runs with the pod's environment and
working directory, in a session of its own so that on timeout the whole group it started is
killed, and never raises for a bad command: the result says what went wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoal.agent.drivers.base import ProcessSpec, build_environment
from shoal.agent.drivers.groups import kill_group_and_wait

# Kubernetes keeps at most 10 KiB of a probe's output; so do we, for messages and events.
MAX_OUTPUT_BYTES = 10 * 1024


@dataclass(frozen=True)
class ExecContext:
    """Where a pod's exec handlers run: its full environment and working directory."""

    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_spec(cls, spec: ProcessSpec, host_env: Mapping[str, str] | None = None) -> ExecContext:
        host = os.environ if host_env is None else host_env
        return cls(cwd=spec.cwd, env=build_environment(spec, host))


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    output: str = ""
    timed_out: bool = False
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.timed_out:
            return "command timed out"
        output = f": {self.output.strip()}" if self.output.strip() else ""
        return f"command exited with code {self.exit_code}{output}"


async def run_exec(
    command: Sequence[str], context: ExecContext, limit_seconds: float
) -> ExecResult:
    """Run `command`; kill its process group if it outlives `limit_seconds`."""
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=context.cwd,
            env=dict(context.env),
            start_new_session=True,
        )
    except OSError as error:
        return ExecResult(None, error=f"cannot run {command[0]!r}: {error.strerror or error}")
    output, timed_out = b"", False
    try:
        async with asyncio.timeout(limit_seconds):
            output, _ = await process.communicate()
    except TimeoutError:
        timed_out = True
        # Not reaped yet, so the group id is still ours.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    finally:
        # A grandchild may outlive the command: not on our watch. kill_group_and_wait only
        # signals a group with live members, so a reused group id is never touched.
        await kill_group_and_wait(process.pid, limit_seconds=2.0)
    if timed_out:
        return ExecResult(None, timed_out=True, error=f"command timed out after {limit_seconds:g}s")
    text = output[:MAX_OUTPUT_BYTES].decode(errors="replace")
    return ExecResult(process.returncode, output=text)
