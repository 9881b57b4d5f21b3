"""Blue-green through a real shoal server, agent, Envoy and probe-app pods, under continuous
load through the Service port:

- while v2 waits behind the preview port, the preview serves only v2 and the active port
  only v1;
- `shoal rollout promote` -> the active port serves only v2 within 1 s, no request fails;
- `shoal rollout undo` within scaleDownDelay -> only v1 again within 1 s, with the very same
  pod processes (v1 stayed warm: nothing was started).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from agent_harness import (
    ShoalServer,
    app_deployment,
    free_port,
    service,
    under_load,
    wait_for,
)
from typer.testing import CliRunner

from shoal.api.deployment import Deployment
from shoal.cli.main import app as shoal_cli

pytestmark = pytest.mark.e2e

SWITCH_BOUND = 1.0  # seconds from the command to "every answer is the new version"


def blue_green(version: str, preview_port: int) -> dict[str, Any]:
    doc = app_deployment("web", version=version, replicas=2)
    doc["spec"]["strategy"] = {
        "type": "BlueGreen",
        "blueGreen": {"previewPort": preview_port, "scaleDownDelaySeconds": 60},
    }
    return doc


def shoal(server: ShoalServer, *args: str) -> str:
    result = CliRunner().invoke(shoal_cli, ["--server", server.url, *args])
    assert result.exit_code == 0, result.output
    return result.output


def phase(server: ShoalServer) -> str | None:
    rollout = server.client.get(Deployment, "web").status.rollout
    return rollout.phase if rollout is not None else None


def versions_at(port: int, count: int) -> set[str]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        answers = [client.get("/version") for _ in range(count)]
    assert all(a.status_code == 200 for a in answers)
    return {a.headers["x-version"] for a in answers}


def last_answer_of(load: Any, version: str, since: float) -> float:
    """When the last request answered by `version` started (since `since`), or `since`."""
    return max((s.started for s in load.all(since) if s.version == version), default=since)


def test_preview_promote_and_instant_undo_under_load(shoal_server: ShoalServer) -> None:
    port, preview = free_port(), free_port()
    shoal_server.client.apply_all([blue_green("v1", preview), service("web", port)])
    wait_for("v1 healthy", lambda: phase(shoal_server) == "Healthy")
    with under_load(port, clients=4, path="/") as load:
        shoal_server.client.apply_all([blue_green("v2", preview)])
        wait_for("the preview of v2", lambda: phase(shoal_server) == "Paused")
        ready = time.monotonic()
        assert versions_at(preview, 200) == {"v2"}
        wait_for("answers on the active port", lambda: len(load.all(since=ready)) >= 500)
        assert load.versions(since=ready) == {"v1"}
        pids = sorted(p.pid for p in shoal_server.pod_processes())
        assert len(pids) == 4  # two warm v1 pods beside two v2 pods

        promoted = time.monotonic()
        assert "promoted" in shoal(shoal_server, "rollout", "promote", "deployment/web")
        wait_for(
            "answers after the switch bound",
            lambda: len(load.all(since=promoted + SWITCH_BOUND)) >= 500,
        )
        switch = last_answer_of(load, "v1", promoted) - promoted
        assert switch < SWITCH_BOUND, f"v1 still answered {switch:.3f}s after promote"
        assert load.versions(since=promoted + SWITCH_BOUND) == {"v2"}
        wait_for("v2 active and confirmed", lambda: phase(shoal_server) == "Healthy")
        assert versions_at(preview, 50) == {"v2"}  # the preview follows the active version

        undone = time.monotonic()
        assert "rolled back" in shoal(shoal_server, "rollout", "undo", "deployment/web")
        wait_for(
            "answers after the undo bound",
            lambda: len(load.all(since=undone + SWITCH_BOUND)) >= 500,
        )
        back = last_answer_of(load, "v2", undone) - undone
        assert back < SWITCH_BOUND, f"v2 still answered {back:.3f}s after undo"
        assert load.versions(since=undone + SWITCH_BOUND) == {"v1"}
        assert sorted(p.pid for p in shoal_server.pod_processes()) == pids, "new processes"
    assert load.total > 3000, "the load generator hardly ran"
    assert load.failed == 0, f"{load.failed} of {load.total} failed: {load.errors}"
    print(
        f"\nblue-green: promote switch {switch:.3f}s, undo switch {back:.3f}s, "
        f"{load.total} requests, 0 failed"
    )
