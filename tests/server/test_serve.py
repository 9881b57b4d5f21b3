"""End to end: `python -m shoal.server` as a real process (SQLite data dir, uvicorn), driven
by the typed client, including a watch stream; stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shoal.api.pod import Pod, PodSpec
from shoal.client import Client

pytestmark = pytest.mark.e2e


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "shoal.server",
        "--data-dir",
        str(tmp_path),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not become healthy")
        yield url
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            assert process.wait(15) == 0
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            raise


def test_server_process_serves_and_streams(server_url: str) -> None:
    with Client(server_url) as client:
        first = client.create(Pod.new("a", spec=PodSpec(command=["sleep", "1"])))
        client.create(Pod.new("b", spec=PodSpec(command=["sleep", "1"])))
        since = int(first.metadata.resource_version or 0)
        seen = []
        for event in client.watch(Pod, namespace="default", since=since):
            seen.append((event.type, event.object.metadata.name))
            if len(seen) == 1:
                client.delete(Pod, "a")
            if len(seen) == 2:
                break
        assert seen == [("ADDED", "b"), ("DELETED", "a")]
        assert [p.metadata.name for p in client.list(Pod).items] == ["b"]
