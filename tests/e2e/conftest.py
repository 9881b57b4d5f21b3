"""Fixtures of the end-to-end tests: real `shoal server`s (API, controllers, embedded agent,
Envoy) on free ports with temp data dirs. At the end each server is stopped gracefully
(SIGTERM) unless the test did it, and the test fails if the server did not exit cleanly or any
pod process or Envoy of it is still running (killed by pid first, so nothing leaks on)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from agent_harness import ServerFactory, ShoalServer, servers


def servers_in(base: Path) -> AbstractContextManager[ServerFactory]:
    """Servers with the data dirs `base`/shoal-1, shoal-2, ... (`agent_harness.servers`)."""

    def new_data_dir(number: int) -> Path:
        data_dir = base / f"shoal-{number}"
        data_dir.mkdir()
        return data_dir

    return servers(new_data_dir)


@pytest.fixture
def shoal_server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """`factory(env=None, agent=True)` starts one more server with its own data dir."""
    with servers_in(tmp_path) as start:
        yield start


@pytest.fixture
def shoal_server(shoal_server_factory: ServerFactory) -> ShoalServer:
    return shoal_server_factory()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalServer]:
    """One server for a whole module whose tests use their own namespaces and ports."""
    with servers_in(tmp_path_factory.mktemp("shared")) as start:
        yield start()
