"""The SDK without a server: it answers from a snapshot file (a restart while the server is
down), gives the shared vectors' answers, and keeps retrying in the background."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.toggles.client import ToggleClient

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text())


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_snapshot(path: Path, toggles: list[dict[str, Any]], revision: int = 7) -> None:
    items = [
        {
            "apiVersion": "shoal/v1",
            "kind": "FeatureToggle",
            "metadata": {"name": t["name"], "namespace": "vectors"},
            "spec": t["spec"],
        }
        for t in toggles
    ]
    path.write_text(json.dumps({"namespace": "vectors", "revision": revision, "items": items}))


@pytest.fixture
def offline_client(tmp_path: Path) -> Iterator[ToggleClient]:
    snapshot = tmp_path / "toggles.json"
    write_snapshot(snapshot, VECTORS["toggles"])
    # Nothing listens on this port: the client must live on its snapshot file.
    client = ToggleClient(
        f"http://127.0.0.1:{unused_port()}", "vectors", snapshot_path=snapshot, wait_seconds=0
    )
    yield client
    client.close()


def test_answers_the_vectors_from_the_snapshot_file(offline_client: ToggleClient) -> None:
    assert offline_client.wait_ready(0)
    assert offline_client.revision == 7
    assert not offline_client.connected
    for case in VECTORS["cases"]:
        answer = offline_client.evaluate(case["toggle"], case["context"])
        assert answer is not None
        expect = case["expect"]
        assert {k: answer.to_json()[k] for k in expect} == expect, case
        assert offline_client.is_enabled(case["toggle"], case["context"]) is expect["value"]
        assert offline_client.variant(case["toggle"], case["context"]) == expect["variant"]


def test_unknown_toggle_gives_the_default(offline_client: ToggleClient) -> None:
    assert offline_client.is_enabled("no-such-toggle") is False
    assert offline_client.is_enabled("no-such-toggle", {"userId": "1"}, default=True) is True
    assert offline_client.variant("no-such-toggle") is None
    assert offline_client.evaluate("no-such-toggle") is None


def test_environment_gives_server_and_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_SERVER", f"http://127.0.0.1:{unused_port()}/")
    monkeypatch.setenv("SHOAL_NAMESPACE", "shop")
    client = ToggleClient(wait_seconds=0)
    try:
        assert client.server.startswith("http://127.0.0.1:")
        assert not client.server.endswith("/")
        assert client.namespace == "shop"
        assert client.names() == []
        assert not client.wait_ready(0.2)  # no server and no file: nothing to answer from
    finally:
        client.close()


def test_unreadable_snapshot_file_is_ignored(tmp_path: Path) -> None:
    snapshot = tmp_path / "toggles.json"
    snapshot.write_text("{not json")
    client = ToggleClient(
        f"http://127.0.0.1:{unused_port()}", "x", snapshot_path=snapshot, wait_seconds=0
    )
    try:
        assert client.names() == []
    finally:
        client.close()
