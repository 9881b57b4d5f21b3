"""Fixtures of the end-to-end tests: real `shoal server`s (API, controllers, embedded agent,
Envoy) on free ports with temp data dirs. At the end each server is stopped gracefully
(SIGTERM) unless the test did it, and the test fails if the server did not exit cleanly or any
pod process or Envoy of it is still running (killed by pid first, so nothing leaks on)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from agent_harness import ServerFactory, ShoalServer, kill_leftovers


@contextmanager
def servers_in(base: Path) -> Iterator[ServerFactory]:
    started: list[ShoalServer] = []

    def start(env: dict[str, str] | None = None, agent: bool = True) -> ShoalServer:
        data_dir = base / f"shoal-{len(started) + 1}"
        data_dir.mkdir()
        server = ShoalServer(data_dir, env, agent=agent)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        problems = []
        for server in started:
            server.close()
            if server.running() and (code := server.stop()) != 0:
                problems.append(f"server exited with {code}:\n{server.log()[-3000:]}")
            leaked = kill_leftovers(server)
            if leaked:
                problems.append("left running after a graceful stop: " + "; ".join(leaked))
        assert not problems, "\n".join(problems)


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
