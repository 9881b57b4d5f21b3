"""Helpers of the Envoy layer tests (imported by conftest.py and the tests): free ports, the
upstream app as a subprocess stopped by pid, the harness a test gets from the `envoy` fixture."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from shoal.agent.envoy import EnvoySupervisor, XdsWriter

UPSTREAM_APP = Path(__file__).with_name("upstream_app.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Upstream:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM by pid (the app exits at once), SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_upstream(name: str) -> Upstream:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(UPSTREAM_APP), str(port), name],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        process.kill()
        process.wait()
        raise RuntimeError(f"upstream {name} did not start")
    return Upstream(name, port, process)


@dataclass
class EnvoyHarness:
    writer: XdsWriter
    supervisor: EnvoySupervisor
    root: Path
