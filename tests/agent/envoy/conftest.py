"""Fixtures for the Envoy layer tests: real upstream processes and a real supervised Envoy,
each on free 127.0.0.1 ports, each stopped by pid in the fixture's finaliser."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from envoy_harness import EnvoyHarness, Upstream, free_port, start_upstream

from shoal.agent.envoy import EnvoySupervisor, XdsWriter


@pytest.fixture
def upstreams() -> Iterator[Callable[[str], Upstream]]:
    started: list[Upstream] = []

    def start(name: str) -> Upstream:
        upstream = start_upstream(name)
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.stop()


@pytest.fixture
async def envoy(tmp_path: Path) -> AsyncIterator[EnvoyHarness]:
    admin_port = free_port()
    writer = XdsWriter(tmp_path / "envoy")
    bootstrap = writer.write_bootstrap(
        node_id="test-node", node_cluster="shoal", admin_port=admin_port
    )
    supervisor = EnvoySupervisor(
        bootstrap=bootstrap,
        admin_port=admin_port,
        state_file=tmp_path / "envoy.state.json",
        log_file=tmp_path / "envoy.log",
    )
    await supervisor.start()
    try:
        yield EnvoyHarness(writer, supervisor, tmp_path)
    finally:
        await supervisor.stop()
