"""Feature toggles end to end against a real API server process (stopped by pid):
the shared vectors give one answer in the SDK, the evaluate endpoint and the CLI; a change
reaches every SDK client quickly; with the server stopped, clients keep answering."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from shoal.api.featuretoggle import FeatureToggle
from shoal.cli.main import app as shoal_cli
from shoal.client import Client
from shoal.toggles.client import ToggleClient
from shoal.toggles.hashing import as_text

pytestmark = pytest.mark.e2e

VECTORS = json.loads((Path(__file__).parent.parent / "toggles" / "vectors.json").read_text())
NS = "vectors"
GENEROUS_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`python -m shoal.server.toggles_routes` on a SQLite data dir, stopped by pid."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoal.server.toggles_routes",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
        )
        deadline = time.monotonic() + GENEROUS_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "server exited at start"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("server did not become healthy")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=GENEROUS_SECONDS)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data", free_port())
    process.start()
    yield process
    process.stop()


def toggle(name: str, spec: dict[str, Any]) -> FeatureToggle:
    return FeatureToggle.from_json(
        {
            "apiVersion": "shoal/v1",
            "kind": "FeatureToggle",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    )


@pytest.fixture
def loaded(server: ServerProcess) -> ServerProcess:
    with Client(server.url) as client:
        for item in VECTORS["toggles"]:
            client.create(toggle(item["name"], item["spec"]))
    return server


def wait_until(condition: Callable[[], bool], timeout: float = GENEROUS_SECONDS) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        time.sleep(0.002)
    return time.monotonic() - start


def picked(answer: dict[str, Any], expect: dict[str, Any]) -> dict[str, Any]:
    return {key: answer[key] for key in expect}


def test_same_answer_in_sdk_endpoint_and_cli(loaded: ServerProcess) -> None:
    sdk = ToggleClient(loaded.url, NS)
    runner = CliRunner()
    try:
        assert sdk.wait_ready(GENEROUS_SECONDS)
        assert set(sdk.names()) == {t["name"] for t in VECTORS["toggles"]}
        for case in VECTORS["cases"]:
            expect = case["expect"]
            local = sdk.evaluate(case["toggle"], case["context"])
            assert local is not None
            assert picked(local.to_json(), expect) == expect, case
            served = httpx.post(
                f"{loaded.url}/api/v1/namespaces/{NS}/toggles/evaluate",
                json={"context": case["context"]},
            ).json()["toggles"]
            assert picked(served[case["toggle"]], expect) == expect, case
            # The CLI passes text; canonical text hashes and compares like the JSON value.
            pairs = [f"--context={k}={as_text(v)}" for k, v in case["context"].items()]
            result = runner.invoke(
                shoal_cli,
                [
                    "toggle",
                    "eval",
                    case["toggle"],
                    *pairs,
                    "-n",
                    NS,
                    "-s",
                    loaded.url,
                    "-o",
                    "json",
                ],
            )
            assert result.exit_code == 0, result.output
            printed = json.loads(result.stdout)["toggles"][case["toggle"]]
            assert picked(printed, expect) == expect, case
    finally:
        sdk.close()


def test_cli_ramps_and_kills_and_every_sdk_client_follows(loaded: ServerProcess) -> None:
    clients = [ToggleClient(loaded.url, NS) for _ in range(10)]
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(shoal_cli, ["toggle", *args, "-n", NS, "-s", loaded.url])
        assert result.exit_code == 0, result.output
        return result.stdout

    users = [f"user-{i}" for i in range(2000)]
    try:
        assert all(c.wait_ready(GENEROUS_SECONDS) for c in clients)
        assert "rollout-30" in cli("list")
        cli("rollout", "rollout-30", "60")
        wait_until(lambda: all(c.get("rollout-30").percentage == 60 for c in clients))  # type: ignore[union-attr]
        at_60 = {u for u in users if clients[0].is_enabled("rollout-30", {"userId": u})}
        assert 1050 <= len(at_60) <= 1350
        assert "disabled" in cli("disable", "rollout-30")
        wait_until(
            lambda: (
                not any(c.is_enabled("rollout-30", {"userId": u}) for c in clients for u in at_60)
            )
        )
        assert all(
            c.evaluate("rollout-30", {"userId": "x"}).reason == "disabled"  # type: ignore[union-attr]
            for c in clients
        )
    finally:
        for client in clients:
            client.close()


def test_cli_rejects_bad_input_with_field_paths(loaded: ServerProcess) -> None:
    runner = CliRunner()
    result = runner.invoke(
        shoal_cli, ["toggle", "rollout", "rollout-30", "150", "-n", NS, "-s", loaded.url]
    )
    assert result.exit_code != 0
    assert "spec.rollout.percentage" in result.output
    missing = runner.invoke(shoal_cli, ["toggle", "get", "nope", "-n", NS, "-s", loaded.url])
    assert missing.exit_code != 0
    assert "not found" in missing.output
    with Client(loaded.url) as client:
        assert client.get(FeatureToggle, "rollout-30", NS).spec.rollout.percentage == 30  # type: ignore[union-attr]


def test_clients_keep_answering_while_the_server_is_down(
    loaded: ServerProcess, tmp_path: Path
) -> None:
    snapshot = tmp_path / "snapshot.json"
    sdk = ToggleClient(loaded.url, NS, snapshot_path=snapshot, max_backoff=0.2)
    context = {"country": "de", "userId": "user-1"}
    try:
        assert sdk.wait_ready(GENEROUS_SECONDS)
        before = sdk.evaluate("rollout-constraint", context)
        assert before is not None and before.value is True
        loaded.stop()
        wait_until(lambda: not sdk.connected)
        for _ in range(3):
            assert sdk.evaluate("rollout-constraint", context) == before
            assert sdk.is_enabled("op-in", {"country": "fr"}) is True
            time.sleep(0.2)
        # A service restarting while the server is down answers from the snapshot file.
        restarted = ToggleClient(loaded.url, NS, snapshot_path=snapshot, wait_seconds=0)
        try:
            assert restarted.evaluate("rollout-constraint", context) == before
        finally:
            restarted.close()
        # The server comes back (same data dir and port): the client reconnects and follows.
        loaded.start()
        wait_until(lambda: sdk.connected)
        with Client(loaded.url) as client:
            current = client.get(FeatureToggle, "op-in", NS)
            current.spec.enabled = False
            client.update(current)
        wait_until(lambda: not sdk.is_enabled("op-in", {"country": "fr"}))
    finally:
        sdk.close()
