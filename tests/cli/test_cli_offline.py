"""The `shoal` CLI without a server: usage errors and an unreachable server are clear
messages with non-zero exits, never tracebacks."""

from __future__ import annotations

from pathlib import Path

from cli_runner import Shoal, free_port
from typer.testing import CliRunner

from shoal.cli.main import app


def offline() -> Shoal:
    return Shoal(f"http://127.0.0.1:{free_port()}")  # nothing listens there


def test_unreachable_server_is_a_clear_error() -> None:
    shoal = offline()
    code, out = shoal("get", "pods")
    assert code == 1
    assert f"cannot reach shoal server at {shoal.server}" in out
    assert "is `shoal server` running? set --server or SHOAL_SERVER" in out
    assert "Traceback" not in out


def test_server_from_environment() -> None:
    url = offline().server
    result = CliRunner().invoke(app, ["get", "pods"], env={"SHOAL_SERVER": url})
    assert result.exit_code == 1
    assert f"cannot reach shoal server at {url}" in result.output


def test_usage_errors_exit_2() -> None:
    shoal = offline()
    code, out = shoal("get", "pods", "-o", "table9")
    assert code == 2 and "wide, json, yaml, name" in out
    code, out = shoal("rollout", "status", "deployment/web", "--timeout", "soon")
    assert code == 2 and "not a duration" in out
    code, out = shoal("rollout", "undo", "service/web")
    assert code == 2 and "rollout works on deployments" in out
    code, out = shoal("scale", "deployment/web", "--replicas", "-1")
    assert code == 2


def test_manifest_errors_need_no_server(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    code, out = offline()("apply", "-f", str(bad))
    assert code == 1 and "invalid YAML" in out and "bad.yaml" in out
    code, out = offline()("apply", "-f", str(tmp_path / "missing.yaml"))
    assert code == 1 and "no such file" in out
