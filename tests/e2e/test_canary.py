"""Canary through a real shoal server, agent, Envoy and probe-app pods, judged by analysis of
shoal's own Envoy statistics, under continuous load through the Service port:

- a good version walks 20 % -> pause -> analysis -> 50 % -> pause -> 100 % by itself, and the
  share of answers per version at each weight is within 5 points of it (>= 1,000 requests);
- a bad version (30 % of its answers are 500s) fails the analysis, and its weight is 0 within
  interval x failureLimit + 2 s of the analysis start; the Deployment is Degraded with a reason
  naming the metric and its values; failed requests stay near weight x error rate;
- requests with the header route's header always reach the canary, `x-shoal-canary` overrides
  both ways, and a sticky `x-user-id` always gets the same version, the one toggles' `bucket()`
  gives it;
- bad input (missing template, weight over 100, a step after 100 %) is rejected at apply with
  field paths, and nothing is stored.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from agent_harness import (
    Load,
    ShoalServer,
    app_deployment,
    free_port,
    service,
    under_load,
    wait_for,
)
from typer.testing import CliRunner

from shoal.api.analysis import AnalysisRun
from shoal.api.deployment import Deployment
from shoal.api.event import Event
from shoal.api.meta import find_condition
from shoal.api.pod import Pod
from shoal.api.rollout import RolloutStatus
from shoal.cli.main import app as shoal_cli
from shoal.toggles.hashing import bucket

pytestmark = pytest.mark.e2e

SHARE_TOLERANCE = 5.0  # percentage points


def template(namespace: str, *, failure_limit: int = 1, count: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "success-rate", "namespace": namespace},
        "spec": {
            "metrics": [
                {
                    "name": "success-rate",
                    "interval": "1s",
                    "count": count,
                    "failureLimit": failure_limit,
                    "successCondition": "result >= 0.95",
                    "provider": {"envoy": {"metric": "successRate", "minRequests": 20}},
                }
            ]
        },
    }


def canary(
    namespace: str, version: str, steps: list[dict[str, Any]], env: dict[str, str] | None = None,
    **settings: Any,
) -> dict[str, Any]:  # fmt: skip
    doc = app_deployment("web", version=version, replicas=2, env=env, namespace=namespace)
    doc["spec"]["strategy"] = {"type": "Canary", "canary": {"steps": steps, **settings}}
    return doc


def status(server: ShoalServer, namespace: str) -> RolloutStatus:
    rollout = server.client.get(Deployment, "web", namespace).status.rollout
    assert rollout is not None
    return rollout


def healthy(server: ShoalServer, namespace: str) -> bool:
    d = server.client.get(Deployment, "web", namespace)
    return d.status.rollout is not None and d.status.rollout.phase == "Healthy"


def share(load: Load, start: float, end: float, version: str) -> tuple[float, int]:
    answers = [s for s in load.all(start) if s.started <= end and s.ok]
    return 100.0 * sum(s.version == version for s in answers) / max(len(answers), 1), len(answers)


def test_a_good_canary_steps_through_exact_weights_and_promotes_itself(
    shared_server: ShoalServer,
) -> None:
    ns, port = "good", free_port()
    steps = [
        {"setWeight": 20},
        {"pause": {"duration": "6s"}},
        {"analysis": {"templates": [{"templateName": "success-rate"}]}},
        {"setWeight": 50},
        {"pause": {"duration": "6s"}},
    ]
    client = shared_server.client
    client.apply_all([template(ns), canary(ns, "v1", steps), service("web", port, ns)])
    wait_for("v1 healthy", lambda: healthy(shared_server, ns))
    windows: dict[int, list[float]] = {}
    with under_load(port, clients=4, path="/") as load:
        client.apply_all([canary(ns, "v2", steps)])
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rollout = status(shared_server, ns)
            now = time.monotonic()
            if rollout.phase == "Paused" and rollout.traffic_confirmed:
                windows.setdefault(rollout.traffic.weight, [now, now])[1] = now
            if (
                rollout.phase == "Healthy"
                and rollout.stable_hash == rollout.traffic.stable
                and (rollout.new_hash is None and windows.get(50))
            ):
                break
            time.sleep(0.05)
        done = time.monotonic()
        wait_for("answers after promotion", lambda: len(load.all(since=done)) >= 300)
        assert load.versions(since=done) == {"v2"}
    assert sorted(windows) == [20, 50], windows
    for weight, (start, end) in windows.items():
        measured, count = share(load, start + 0.1, end, "v2")
        assert count >= 1000, f"only {count} answers at {weight} %"
        assert abs(measured - weight) <= SHARE_TOLERANCE, f"{measured:.1f} % at weight {weight}"
        print(f"\nweight {weight}: {measured:.1f} % of {count} answers from the canary")
    (run,) = client.list(AnalysisRun, ns).items
    assert run.status.phase == "Successful"
    assert [m.phase for m in run.status.metric_results[0].measurements] == ["Successful"] * 3
    assert load.failed == 0, f"{load.failed} of {load.total} failed: {load.errors}"


def test_a_bad_canary_is_stopped_within_the_bound_and_degraded(shared_server: ShoalServer) -> None:
    ns, port = "bad", free_port()
    interval, failure_limit = 1.0, 1
    steps = [
        {"setWeight": 20},
        {"pause": {"duration": "3s"}},
        {"analysis": {"templates": [{"templateName": "success-rate"}]}},
        {"setWeight": 50},
    ]
    client = shared_server.client
    client.apply_all(
        [template(ns, failure_limit=failure_limit, count=5), canary(ns, "v1", steps),
         service("web", port, ns)]
    )  # fmt: skip
    wait_for("v1 healthy", lambda: healthy(shared_server, ns))
    with under_load(port, clients=4, path="/") as load:
        client.apply_all([canary(ns, "v2", steps, env={"ERROR_RATE": "0.3"})])
        first_canary = wait_for(
            "canary answers", lambda: [s.started for s in load.all() if s.version == "v2"][:1]
        )[0]
        run = wait_for("the analysis run", lambda: client.list(AnalysisRun, ns).items)[0]
        started = wait_for(
            "its start", lambda: client.get(AnalysisRun, run.metadata.name, ns).status.started_at
        )
        # The run's start on the monotonic clock of the load samples.
        analysis_start = time.monotonic() - (time.time() - started.timestamp())
        wait_for("Degraded", lambda: status(shared_server, ns).phase == "Degraded")
        stopped = time.monotonic()
        wait_for("answers after the abort", lambda: len(load.all(since=stopped + 0.5)) >= 500)
    last_canary = max(s.started for s in load.all() if s.version == "v2")
    bound = interval * failure_limit + 2.0
    detected = last_canary - analysis_start
    assert detected <= bound, f"the canary still answered {detected:.2f}s after analysis began"
    print(
        f"\nbad canary: last canary answer {detected:.2f}s after the analysis started "
        f"(bound {bound:.1f}s)"
    )
    rollout = status(shared_server, ns)
    reason = rollout.abort_reason or ""
    assert "success-rate" in reason and "values 0." in reason, reason
    assert rollout.traffic.weight == 0 and rollout.traffic.canary is None
    deployment = client.get(Deployment, "web", ns)
    progressing = find_condition(deployment.status.conditions, "Progressing")
    assert progressing is not None and progressing.reason == "RolloutAborted"
    assert "success-rate" in (progressing.message or "")
    reasons = {e.reason for e in client.list(Event, ns).items}
    assert "RolloutAborted" in reasons
    # Failures are the canary's 500s while it had its weight: near 20 % x 30 % of that traffic.
    exposed = [s for s in load.all(first_canary) if s.started <= last_canary]
    expected = 0.2 * 0.3 * len(exposed)
    assert load.failed <= 2 * expected + 20, f"{load.failed} failed, expected ~{expected:.0f}"
    assert all(s.ok for s in load.all(last_canary + 0.001)), "failures after the abort"
    canary_pods = lambda: [  # noqa: E731
        p
        for p in client.list(Pod, ns).items
        if p.metadata.labels.get("pod-template-hash") == rollout.new_hash
    ]
    wait_for("the canary scaled down", lambda: not canary_pods())


def test_header_route_overrides_and_sticky_users(shared_server: ShoalServer) -> None:
    ns, port = "routes", free_port()
    steps = [
        {"setHeaderRoute": {"match": [{"header": "x-user-group", "exact": "beta"}]}},
        {"setWeight": 30},
        {"pause": {}},
    ]
    client = shared_server.client
    sticky = {"stickiness": {"header": "x-user-id"}}
    client.apply_all([canary(ns, "v1", steps, **sticky), service("web", port, ns)])
    wait_for("v1 healthy", lambda: healthy(shared_server, ns))
    client.apply_all([canary(ns, "v2", steps, **sticky)])
    wait_for("paused at 30 %", lambda: (r := status(shared_server, ns)).phase == "Paused"
             and r.traffic.weight == 30 and r.traffic_confirmed)  # fmt: skip
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

        def version(headers: dict[str, str]) -> str:
            answer = http.get("/version", headers=headers)
            assert answer.status_code == 200
            return answer.headers["x-version"]

        assert {version({"x-user-group": "beta"}) for _ in range(100)} == {"v2"}
        assert {version({"x-shoal-canary": "always"}) for _ in range(50)} == {"v2"}
        assert {version({"x-shoal-canary": "never", "x-user-group": "beta"})
                for _ in range(50)} == {"v1"}  # fmt: skip
        wrong = []
        for user in (f"user-{n}" for n in range(200)):
            seen = {version({"x-user-id": user}) for _ in range(3)}
            expected = "v2" if bucket(user) <= 30 else "v1"
            if seen != {expected}:
                wrong.append((user, seen, bucket(user)))
        assert wrong == []
        anonymous = [version({}) for _ in range(600)]
        assert 15 <= 100 * anonymous.count("v2") / len(anonymous) <= 45
    runner = CliRunner()
    result = runner.invoke(shoal_cli, ["--server", shared_server.url, "-n", ns, "rollout",
                                       "status", "deployment/web", "--no-watch"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "canary" in result.output and "30%" in result.output
    assert "header route x-user-group=beta" in result.output


def test_bad_input_is_rejected_at_apply_with_field_paths(
    shared_server: ShoalServer, tmp_path: Any
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        """
apiVersion: shoal/v1
kind: Deployment
metadata: {name: web, namespace: bad-input}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {command: [x]}
  strategy:
    type: Canary
    canary:
      steps:
      - setWeight: 100
      - analysis: {templates: [{templateName: missing}]}
---
apiVersion: shoal/v1
kind: Deployment
metadata: {name: other, namespace: bad-input}
spec:
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec: {command: [x]}
  strategy: {type: Canary, canary: {steps: [{setWeight: 120}]}}
"""
    )
    result = CliRunner().invoke(shoal_cli, ["--server", shared_server.url, "apply", "-f",
                                            str(manifest)])  # fmt: skip
    assert result.exit_code != 0
    assert "(document 1, deployment/web): spec.strategy.canary.steps[1]" in result.output
    assert "(document 2, deployment/other): spec.strategy.canary.steps[0].setWeight" in (
        result.output
    )
    missing = tmp_path / "missing.yaml"
    missing.write_text(manifest.read_text().split("---")[0].replace("- setWeight: 100\n", ""))
    result = CliRunner().invoke(shoal_cli, ["--server", shared_server.url, "apply", "-f",
                                            str(missing)])  # fmt: skip
    assert result.exit_code != 0
    assert "spec.strategy.canary.steps[0].analysis.templates[0].templateName" in result.output
    assert "'missing' not found" in result.output
    assert shared_server.client.list(Deployment, "bad-input").items == []
