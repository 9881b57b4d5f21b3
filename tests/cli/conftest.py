"""Fixtures for the CLI tests: the `shoal` app under typer's CliRunner, and a real
`shoal server` (API, store, controllers; no node agent) in a child process on a free port."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from cli_runner import Shoal, free_port

_namespaces = itertools.count(1)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`shoal server --no-agent` (API, store, controllers) on a free port, stopped by pid."""
    data_dir = tmp_path_factory.mktemp("shoal-data")
    port = free_port()
    log = (data_dir / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoal.cli.main",
            "server",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            "--no-agent",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"shoal server exited with {process.returncode}: "
                    + (data_dir / "server.log").read_text()
                )
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("shoal server did not start within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()  # by pid: Popen signals exactly the child it started
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@pytest.fixture
def shoal(server_url: str) -> Shoal:
    return Shoal(server_url)


@pytest.fixture
def namespace() -> str:
    """A fresh namespace per test: tests share one server but never each other's objects."""
    return f"t{next(_namespaces)}"
