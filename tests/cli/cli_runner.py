"""The CLI under test: `Shoal(server)("get", "pods")` runs the `shoal` app in this process
with typer's CliRunner; `free_port()` for the server the fixtures start."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from shoal.cli.main import app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Shoal:
    """Runs `shoal ARGS...` against one server, in this process."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.runner = CliRunner()

    def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str]:
        result = self.runner.invoke(app, ["--server", self.server, *args], input=stdin)
        return result.exit_code, result.output
