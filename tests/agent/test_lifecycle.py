"""preStop and the node-local stop sequence: hook bounded by the grace period, the rest of the
grace period for SIGTERM, the 2 s extension, a real process stopped after its hook."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shoal.agent.drivers.base import ExitStatus, ProcessSpec, StartError, TaskHandle, TaskInfo
from shoal.agent.drivers.groups import is_alive
from shoal.agent.drivers.process import ProcessDriver
from shoal.agent.exec_action import ExecContext
from shoal.agent.lifecycle import run_pre_stop, stop_pod
from shoal.api.pod import LifecycleHandler


def hook(data: dict[str, object]) -> LifecycleHandler:
    return LifecycleHandler.model_validate(data)


@dataclass
class FakeDriver:
    """Records the grace period it was asked to stop with."""

    name: str = "fake"
    grace: list[float] = field(default_factory=list)

    async def start(self, spec: ProcessSpec) -> TaskHandle | StartError:
        raise NotImplementedError

    async def wait(self, handle: TaskHandle) -> ExitStatus:
        raise NotImplementedError

    async def signal(self, handle: TaskHandle, signum: int) -> None:
        raise NotImplementedError

    async def stop(self, handle: TaskHandle, grace_seconds: float) -> ExitStatus:
        self.grace.append(grace_seconds)
        return ExitStatus(0, None, "Completed", 0.0, 1.0)

    async def recover(self, handle: TaskHandle) -> TaskHandle | ExitStatus:
        raise NotImplementedError

    async def inspect(self, handle: TaskHandle) -> TaskInfo:
        raise NotImplementedError


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


HANDLE = TaskHandle("fake", "uid", 1, 1, 0.0, 0.0)


@pytest.fixture
def context(tmp_path: Path) -> ExecContext:
    return ExecContext(cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})


async def test_no_hook_gives_sigterm_the_whole_grace(context: ExecContext) -> None:
    driver = FakeDriver()
    outcome = await stop_pod(driver, HANDLE, grace_seconds=30, pre_stop=None, context=context)
    assert not outcome.pre_stop.ran
    assert driver.grace[0] == pytest.approx(30, abs=0.5)


async def test_sleep_hook_is_taken_from_the_grace_period(context: ExecContext) -> None:
    driver = FakeDriver()
    pre_stop = hook({"sleep": {"seconds": 0.2}})
    outcome = await stop_pod(driver, HANDLE, grace_seconds=10, pre_stop=pre_stop, context=context)
    assert outcome.pre_stop.ran and outcome.pre_stop.seconds >= 0.2
    assert driver.grace[0] <= 9.8


async def test_hook_longer_than_grace_is_cut_and_term_gets_an_extension(
    context: ExecContext,
) -> None:
    driver = FakeDriver()
    pre_stop = hook({"exec": {"command": ["sleep", "30"]}})
    outcome = await stop_pod(driver, HANDLE, grace_seconds=0.3, pre_stop=pre_stop, context=context)
    assert not outcome.pre_stop.succeeded and "timed out" in outcome.pre_stop.message
    assert driver.grace == [2.0]
    cut = await run_pre_stop(hook({"sleep": {"seconds": 60}}), context, 0.05)
    assert "cut short" in cut.message


async def test_zero_grace_skips_exec_hook_and_kills(context: ExecContext) -> None:
    driver = FakeDriver()
    pre_stop = hook({"exec": {"command": ["true"]}})
    outcome = await stop_pod(driver, HANDLE, grace_seconds=0, pre_stop=pre_stop, context=context)
    assert not outcome.pre_stop.succeeded
    assert driver.grace == [0.0]


@pytest.mark.e2e
async def test_real_process_sees_prestop_then_sigterm(tmp_path: Path) -> None:
    driver = ProcessDriver()
    script = (
        "import signal, sys, time, pathlib\n"
        "def bye(*_):\n"
        "    print('term after', pathlib.Path('hook').read_text(), flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('up', flush=True)\n"
        "time.sleep(1000)\n"
    )
    spec = ProcessSpec(
        argv=[sys.executable, "-c", script], cwd=tmp_path, log_path=tmp_path / "log",
        pod_uid="u", pod_name="p",
    )  # fmt: skip
    handle = await driver.start(spec)
    assert isinstance(handle, TaskHandle)
    try:
        for _ in range(750):  # up to 15 s for the interpreter to start
            if "up" in read(spec.log_path):
                break
            await asyncio.sleep(0.02)
        pre_stop = hook({"exec": {"command": ["sh", "-c", "echo hook-ran > hook"]}})
        outcome = await stop_pod(
            driver, handle, grace_seconds=10, pre_stop=pre_stop,
            context=ExecContext.for_spec(spec),
        )  # fmt: skip
        assert outcome.pre_stop.succeeded
        assert (outcome.exit.exit_code, outcome.exit.signal) == (0, None)
        assert "term after hook-ran" in read(spec.log_path)
    finally:
        if is_alive(handle.pid):
            await driver.stop(handle, 0)
    assert not is_alive(handle.pid)
