"""A full disk under the data directory, for real: a 2 MB tmpfs that this test mounts (root
only) and always unmounts, a `python -m shoal.server` process whose SQLite store lives on it.
Writes that no longer fit are answered 507 InsufficientStorage with a message that says so
(not a 500), the CLI prints it and exits non-zero, every acknowledged write is still there,
reads keep working, and writes are accepted again once there is space."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from server_samples import free_port
from typer.testing import CliRunner

from shoal.api.errors import ApiError
from shoal.cli.main import app
from shoal.server.app import storage_full

PODS = "/api/v1/namespaces/disk/pods"
BIG = "x" * 60_000  # ~60 KB per object: the 2 MB disk is full after a few dozen


def pod(name: str, blob: str = BIG) -> dict[str, object]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "disk", "annotations": {"blob": blob}},
        "spec": {"command": ["sleep", "1"]},
    }


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def server_on(small_disk: Path) -> Iterator[str]:
    port = free_port()
    log = small_disk.parent / "server.log"  # beside the disk, not on it
    argv = [sys.executable, "-m", "shoal.server", "--data-dir", str(small_disk / "data")]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*argv, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start within 30 s"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()  # by pid: exactly the child this fixture started
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_full_disk_is_recognised_behind_the_store_error() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    wrapped = ApiError("store write failed, nothing was written: database or disk is full")
    wrapped.__cause__ = full
    assert storage_full(full) and storage_full(wrapped)
    assert storage_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not storage_full(sqlite3.OperationalError("database is locked"))
    assert not storage_full(OSError(errno.EACCES, "Permission denied"))
    assert not storage_full(ApiError("something else"))


@pytest.mark.e2e
def test_a_full_disk_is_507_with_a_clear_message_and_loses_nothing(
    server_on: str, small_disk: Path, tmp_path: Path
) -> None:
    acked: list[str] = []
    with httpx.Client(base_url=server_on, timeout=10) as http:
        for index in range(300):
            answer = http.post(PODS, json=pod(f"big-{index}"))
            if answer.status_code != 201:
                break
            acked.append(f"big-{index}")
        assert acked, "nothing fit on the disk at all"
        assert answer.status_code == 507, answer.text
        status = answer.json()
        assert status["kind"] == "Status" and status["reason"] == "InsufficientStorage"
        assert "disk is full" in status["message"] and "not stored" in status["message"]

        stored = {p["metadata"]["name"] for p in http.get(PODS).json()["items"]}
        assert stored == set(acked), "acknowledged writes lost, or a refused one stored"
        assert http.get(f"{PODS}/{acked[0]}").status_code == 200

        manifest = tmp_path / "big.yaml"
        manifest.write_text(yaml.safe_dump(pod("from-the-cli")))
        result = CliRunner().invoke(app, ["--server", server_on, "apply", "-f", str(manifest)])
        assert result.exit_code != 0
        assert "error: the server's disk is full" in result.output, result.output
        assert "Traceback" not in result.output

        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        deadline = time.monotonic() + 10
        while (answer := http.post(PODS, json=pod("after-space"))).status_code != 201:
            assert time.monotonic() < deadline, f"writes not accepted again: {answer.text}"
            time.sleep(0.2)
        stored = {p["metadata"]["name"] for p in http.get(PODS).json()["items"]}
        assert stored == {*acked, "after-space"}
