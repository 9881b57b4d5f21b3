"""FakeDriver behaves like the Driver protocol says (so runner tests built on it mean something)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from shoal.agent.drivers.base import Driver, ProcessSpec, StartError, TaskHandle
from shoal.agent.drivers.fake import FakeDriver

SPEC = ProcessSpec(argv=["app"], cwd=Path("."), log_path=Path("log"), pod_uid="u", pod_name="p")


async def started(driver: FakeDriver) -> TaskHandle:
    handle = await driver.start(SPEC)
    assert isinstance(handle, TaskHandle)
    return handle


async def test_start_exit_wait() -> None:
    driver = FakeDriver()
    protocol: Driver = driver
    handle = await started(driver)
    waiter = asyncio.create_task(protocol.wait(handle))
    await asyncio.sleep(0)
    assert not waiter.done() and (await protocol.inspect(handle)).running
    driver.exit(handle, code=None, signal=signal.SIGKILL)
    status = await waiter
    assert (status.exit_code, status.signal) == (None, signal.SIGKILL)
    assert not (await protocol.inspect(handle)).running


async def test_start_failure_then_success() -> None:
    driver = FakeDriver(fail_next_start=StartError("ExecutableNotFound", "app: not found"))
    assert await driver.start(SPEC) == StartError("ExecutableNotFound", "app: not found")
    assert isinstance(await driver.start(SPEC), TaskHandle)


async def test_stop_polite_and_stubborn() -> None:
    polite = FakeDriver()
    handle = await started(polite)
    assert (await polite.stop(handle, 30)).exit_code == 0
    assert ("stop", (handle.pid, 30)) in polite.calls
    stubborn = FakeDriver(ignores_sigterm=True)
    handle = await started(stubborn)
    assert (await stubborn.stop(handle, 1)).signal == signal.SIGKILL


async def test_recover_only_what_is_alive() -> None:
    driver = FakeDriver()
    handle = await started(driver)
    restarted = FakeDriver(alive={handle.pid})
    assert await restarted.recover(handle) == handle
    gone = await FakeDriver().recover(handle)
    assert not isinstance(gone, TaskHandle) and gone.reason == "UnknownExit"
