"""EnvoySupervisor with a real Envoy: restart after kill -9, re-adoption after an agent restart,
no adoption of a reused pid, clear error when the binary is missing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from envoy_harness import EnvoyHarness, Upstream, free_port

from shoal.agent.envoy import (
    Destination,
    Endpoint,
    EnvoyNotFoundError,
    EnvoyStartError,
    EnvoyState,
    EnvoySupervisor,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
    apply_and_confirm,
    find_envoy_binary,
)
from shoal.agent.envoy.supervisor import describe_exit


def table(port: int, upstream: Upstream) -> RoutingTable:
    return RoutingTable(
        (ServiceListener("svc", port, (Route(Destination.single("c")),)),),
        (UpstreamCluster("c", (Endpoint("127.0.0.1", upstream.port),)),),
    )


@pytest.mark.e2e
async def test_killed_envoy_is_restarted_and_serves_the_written_config(
    envoy: EnvoyHarness, upstreams: Callable[[str], Upstream]
) -> None:
    port = free_port()
    await apply_and_confirm(envoy.writer, envoy.supervisor.admin, table(port, upstreams("a")))
    old_pid = envoy.supervisor.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    for _ in range(200):
        if envoy.supervisor.restarts == 1 and envoy.supervisor.state is EnvoyState.RUNNING:
            break
        await asyncio.sleep(0.05)
    assert envoy.supervisor.restarts == 1
    assert envoy.supervisor.pid != old_pid
    restart = envoy.supervisor.last_restart  # what the agent publishes (EnvoyRestarted)
    assert restart is not None
    assert (restart.count, restart.old_pid, restart.new_pid) == (1, old_pid, envoy.supervisor.pid)
    assert restart.ended == "killed by SIGKILL"
    assert 0 < restart.ready_s < 10
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/")).text == "a"


@pytest.mark.e2e
async def test_running_envoy_is_adopted_not_duplicated(tmp_path: Path, envoy: EnvoyHarness) -> None:
    first = envoy.supervisor
    await first.detach()  # the agent "dies"; Envoy keeps running
    second = EnvoySupervisor(
        bootstrap=first.bootstrap,
        admin_port=first.admin_port,
        state_file=first.state_file,
        log_file=first.log_file,
    )
    pid = await second.start()
    try:
        assert second.adopted and pid == first.pid
        assert psutil.Process(pid).is_running()
    finally:
        await second.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.e2e
async def test_reused_pid_is_not_adopted(tmp_path: Path, envoy: EnvoyHarness) -> None:
    existing = envoy.supervisor
    state_file = tmp_path / "other.state.json"
    # This test process is alive but is not the recorded process (start time differs).
    record = {"pid": os.getpid(), "create_time": 1.0, "admin_port": existing.admin_port}
    state_file.write_text(json.dumps(record))
    await existing.stop()  # frees the admin port for the new supervisor
    other = EnvoySupervisor(
        bootstrap=existing.bootstrap,
        admin_port=existing.admin_port,
        state_file=state_file,
        log_file=existing.log_file,
    )
    pid = await other.start()
    try:
        assert not other.adopted and pid != os.getpid()
    finally:
        await other.stop()


def test_missing_binary_gives_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvoyNotFoundError, match="make install"):
        find_envoy_binary()


@pytest.mark.e2e
async def test_envoy_that_cannot_start_gives_its_log_in_the_error(tmp_path: Path) -> None:
    bootstrap = tmp_path / "bootstrap.json"
    bootstrap.write_text('{"admin": {"address": {"socket_address": {"port_value": "nope"}}}}')
    supervisor = EnvoySupervisor(
        bootstrap=bootstrap,
        admin_port=free_port(),
        state_file=tmp_path / "state.json",
        log_file=tmp_path / "envoy.log",
        max_start_failures=2,
    )
    with pytest.raises(EnvoyStartError, match="did not become ready after 2 tries") as caught:
        await supervisor.start()
    assert "nope" in str(caught.value) or "port_value" in str(caught.value)
    assert supervisor.state is EnvoyState.FATAL
    assert not supervisor.alive()
    await supervisor.stop()


def test_how_envoy_ended_is_said_in_words() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(None) == "exit status unknown (adopted process)"
