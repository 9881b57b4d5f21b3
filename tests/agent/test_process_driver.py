"""ProcessDriver with real processes: start, env, exit and signals, stop escalation, no leaked
group members, clear start errors, re-adoption after an agent dies (and refusal of reused pids).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from shoal.agent.drivers.base import ProcessSpec, StartError, TaskHandle
from shoal.agent.drivers.groups import is_alive, is_same_process
from shoal.agent.drivers.process import REASON_UNKNOWN_EXIT, ProcessDriver
from shoal.agent.exec_action import ExecContext
from shoal.agent.ports import PortAllocator
from shoal.agent.probe_checks import ProbeTarget, check_probe, probe_client
from shoal.api.pod import Probe

pytestmark = pytest.mark.e2e

PY = sys.executable
LIMIT = 15.0  # generous bound for anything that should take well under a second

HTTP_SERVER = textwrap.dedent(
    """
    import http.server, os, sys
    port = int(os.environ["PORT"])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = os.environ["SHOAL_POD_NAME"].encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body)))
            self.end_headers(); self.wfile.write(body)
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", port), H)
    print("listening on", port, "admin", os.environ.get("PORT_ADMIN_API"), flush=True)
    server.serve_forever()
    """
)
IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(1000)"  # noqa: E501
FORK_CHILD = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen(["sleep", "1000"])
    print("child", child.pid, flush=True)
    time.sleep(1000)
    """
)


@pytest.fixture
def spec(tmp_path: Path) -> ProcessSpec:
    cwd = tmp_path / "pod"
    cwd.mkdir()
    return ProcessSpec(
        argv=[PY, "-c", "pass"],
        cwd=cwd,
        log_path=tmp_path / "logs" / "current.log",
        pod_uid="uid-1",
        pod_name="web-1",
    )


@pytest.fixture
def stray_pids() -> Iterator[list[int]]:
    """Pids a test started outside the driver; killed by pid at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if is_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
async def driver() -> AsyncIterator[ProcessDriver]:
    process_driver = ProcessDriver()
    yield process_driver
    for handle in process_driver.managed():
        await process_driver.stop(handle, 0)


async def start(driver: ProcessDriver, spec: ProcessSpec) -> TaskHandle:
    handle = await driver.start(spec)
    assert isinstance(handle, TaskHandle), handle
    return handle


def read_log(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def spawn(argv: list[str], **options: Any) -> subprocess.Popen[str]:
    """A process outside the driver (the test registers its pid for the finaliser)."""
    return subprocess.Popen(argv, text=True, **options)


async def wait_for_log(path: Path, text: str) -> str:
    for _ in range(int(LIMIT / 0.02)):
        if text in (content := read_log(path)):
            return content
        await asyncio.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in {path}: {read_log(path)!r}")


async def test_http_server_gets_its_ports_and_serves(
    driver: ProcessDriver, spec: ProcessSpec
) -> None:
    ports = PortAllocator().allocate("uid-1", ["http", "admin-api"])
    spec = replace(spec, argv=[PY, "-c", HTTP_SERVER], ports=ports, primary_port=ports["http"])
    handle = await start(driver, spec)
    assert handle.pgid == handle.pid
    log = await wait_for_log(spec.log_path, "listening")
    assert f"listening on {ports['http']} admin {ports['admin-api']}" in log
    info = await driver.inspect(handle)
    assert info.running and handle.pid in info.pids and info.memory_bytes > 0
    async with httpx.AsyncClient() as client, asyncio.timeout(LIMIT):
        response = await client.get(f"http://127.0.0.1:{ports['http']}/")
    assert response.text == "web-1"
    target = ProbeTarget(ExecContext.for_spec(spec), ports=ports)
    readiness = Probe.model_validate({"httpGet": {"path": "/", "port": "http"}})
    liveness = Probe.model_validate({"tcpSocket": {"port": "http"}})
    async with probe_client() as probes:
        assert (await check_probe(readiness, target, probes)).success
        assert (await check_probe(liveness, target, probes)).success
        os.kill(handle.pid, signal.SIGKILL)
        status = await asyncio.wait_for(driver.wait(handle), LIMIT)
        assert status.signal == signal.SIGKILL
        assert not (await check_probe(readiness, target, probes)).success


async def test_kill_9_is_reported_as_signal(driver: ProcessDriver, spec: ProcessSpec) -> None:
    handle = await start(driver, replace(spec, argv=["sleep", "1000"]))
    os.kill(handle.pid, signal.SIGKILL)
    status = await asyncio.wait_for(driver.wait(handle), LIMIT)
    assert (status.exit_code, status.signal) == (None, signal.SIGKILL)
    assert "SIGKILL" in (status.message or "")
    assert not status.succeeded


async def test_exit_code_and_stderr_go_to_the_log(driver: ProcessDriver, spec: ProcessSpec) -> None:
    code = "import sys; print('out', flush=True); print('err', file=sys.stderr); sys.exit(3)"
    handle = await start(driver, replace(spec, argv=[PY, "-c", code]))
    status = await asyncio.wait_for(driver.wait(handle), LIMIT)
    assert (status.exit_code, status.signal, status.reason) == (3, None, "Error")
    assert read_log(spec.log_path).split() == ["out", "err"]


async def test_stop_escalates_to_sigkill_when_term_is_ignored(
    driver: ProcessDriver, spec: ProcessSpec
) -> None:
    handle = await start(driver, replace(spec, argv=[PY, "-c", IGNORE_TERM]))
    await wait_for_log(spec.log_path, "up")
    status = await asyncio.wait_for(driver.stop(handle, grace_seconds=0.3), LIMIT)
    assert status.signal == signal.SIGKILL
    assert not is_alive(handle.pid)


async def test_stop_lets_a_polite_process_exit_on_term(
    driver: ProcessDriver, spec: ProcessSpec
) -> None:
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); print('up', flush=True); time.sleep(1000)"  # noqa: E501
    handle = await start(driver, replace(spec, argv=[PY, "-c", code]))
    await wait_for_log(spec.log_path, "up")
    status = await asyncio.wait_for(driver.stop(handle, grace_seconds=LIMIT), LIMIT)
    assert (status.exit_code, status.signal) == (0, None)


async def test_stop_leaves_no_group_member_behind(driver: ProcessDriver, spec: ProcessSpec) -> None:
    handle = await start(driver, replace(spec, argv=[PY, "-c", FORK_CHILD]))
    log = await wait_for_log(spec.log_path, "child")
    child = int(log.split()[1])
    assert is_alive(child) and os.getpgid(child) == handle.pgid
    await asyncio.wait_for(driver.stop(handle, grace_seconds=0.2), LIMIT)
    assert not is_alive(child)


async def test_leader_exit_kills_the_rest_of_its_group(
    driver: ProcessDriver, spec: ProcessSpec
) -> None:
    code = "import subprocess; print('child', subprocess.Popen(['sleep', '1000']).pid, flush=True)"
    handle = await start(driver, replace(spec, argv=[PY, "-c", code]))
    status = await asyncio.wait_for(driver.wait(handle), LIMIT)
    child = int(read_log(spec.log_path).split()[1])
    assert status.exit_code == 0
    assert not is_alive(child)


async def test_missing_command_is_a_clear_error(driver: ProcessDriver, spec: ProcessSpec) -> None:
    result = await driver.start(replace(spec, argv=["no-such-command-shoal"]))
    assert isinstance(result, StartError)
    assert result.reason == "ExecutableNotFound"
    assert "no-such-command-shoal" in result.message
    relative = await driver.start(replace(spec, argv=["./missing.sh"]))
    assert isinstance(relative, StartError) and relative.reason == "ExecutableNotFound"


async def test_non_executable_file_and_missing_cwd_are_clear_errors(
    driver: ProcessDriver, spec: ProcessSpec
) -> None:
    script = spec.cwd / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    result = await driver.start(replace(spec, argv=["./run.sh"]))
    assert isinstance(result, StartError) and result.reason == "StartError"
    assert "not an executable" in result.message
    missing = await driver.start(replace(spec, cwd=spec.cwd / "nope", argv=["sleep", "1"]))
    assert isinstance(missing, StartError) and "working directory" in missing.message


AGENT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from shoal.agent.drivers.base import ProcessSpec
    from shoal.agent.drivers.process import ProcessDriver

    async def main():
        driver = ProcessDriver()
        spec = ProcessSpec(argv=["sleep", "1000"], cwd=Path(sys.argv[1]),
                           log_path=Path(sys.argv[1]) / "log", pod_uid="u", pod_name="p")
        handle = await driver.start(spec)
        print(json.dumps(handle.to_json()), flush=True)
        await asyncio.sleep(1000)

    asyncio.run(main())
    """
)


async def test_recover_adopts_a_process_after_the_agent_dies(
    driver: ProcessDriver, spec: ProcessSpec, stray_pids: list[int]
) -> None:
    agent = spawn([PY, "-c", AGENT, str(spec.cwd)], stdout=subprocess.PIPE)
    stray_pids.append(agent.pid)
    assert agent.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(agent.stdout.readline), LIMIT)
    record = TaskHandle.from_json(json.loads(line))
    stray_pids.append(record.pid)
    agent.kill()
    agent.wait()
    assert is_same_process(record.pid, record.create_time)

    adopted = await driver.recover(TaskHandle.from_json(record.to_json()))
    assert adopted == record
    assert (await driver.inspect(record)).running
    os.kill(record.pid, signal.SIGKILL)
    status = await asyncio.wait_for(driver.wait(record), LIMIT)
    assert status.reason == REASON_UNKNOWN_EXIT
    assert (status.exit_code, status.signal) == (None, None)
    assert "adopted" in (status.message or "")


async def test_recover_then_stop_kills_the_adopted_group(
    driver: ProcessDriver, spec: ProcessSpec, stray_pids: list[int]
) -> None:
    agent = spawn([PY, "-c", AGENT, str(spec.cwd)], stdout=subprocess.PIPE)
    stray_pids.append(agent.pid)
    assert agent.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(agent.stdout.readline), LIMIT)
    record = TaskHandle.from_json(json.loads(line))
    stray_pids.append(record.pid)
    agent.kill()
    agent.wait()
    assert await driver.recover(record) == record
    await asyncio.wait_for(driver.stop(record, grace_seconds=1), LIMIT)
    assert not is_alive(record.pid)


async def test_recover_refuses_a_pid_with_another_start_time(
    driver: ProcessDriver, stray_pids: list[int]
) -> None:
    other = spawn(["sleep", "1000"], start_new_session=True)
    stray_pids.append(other.pid)
    real_start = psutil.Process(other.pid).create_time()
    forged = TaskHandle("process", "u", other.pid, other.pid, real_start - 60, real_start - 60)
    result = await driver.recover(forged)
    assert not isinstance(result, TaskHandle)
    assert result.reason == REASON_UNKNOWN_EXIT and "another process" in (result.message or "")
    assert is_alive(other.pid), "a reused pid must never be touched"
    assert driver.managed() == []
    other.kill()
    other.wait()


async def test_recover_of_a_gone_process_reports_unknown_exit(driver: ProcessDriver) -> None:
    gone = spawn(["true"])
    gone.wait()
    record = TaskHandle("process", "u", gone.pid, gone.pid, 1.0, 1.0)
    result = await driver.recover(record)
    assert not isinstance(result, TaskHandle)
    assert "exited while the agent was down" in (result.message or "")
