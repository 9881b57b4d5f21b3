"""Analysis against a real shoal server, a standalone agent and its Envoy:

- the `envoy` provider gets a version's numbers through the node agent's API
  (`/envoy/stats`), not from Envoy's admin API, which listens on 127.0.0.1 only and so cannot
  be reached when the node is another machine; the agent answers only the named clusters'
  answer statistics and refuses anything that is not a cluster name;
- `shoal apply --wait` understands a progressive rollout: a canary at `pause: {}` ends the
  wait with exit 0 and a line saying it waits for `shoal rollout promote`; a failed analysis
  (Degraded) ends it with a non-zero exit and the reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_harness import (
    ServerFactory,
    ShoalAgent,
    ShoalServer,
    app_deployment,
    free_port,
    service,
    wait_for,
)

from shoal.agent.envoy.config import cluster_name
from shoal.analysis.providers import Target, measure
from shoal.api.analysis import Metric
from shoal.api.deployment import Deployment
from shoal.api.node import Node

pytestmark = pytest.mark.e2e


def canary(name: str, steps: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    doc = app_deployment(name, replicas=1, **more)
    doc["spec"]["strategy"] = {"type": "Canary", "canary": {"steps": steps}}
    return doc


def envoy_metric(name: str) -> Metric:
    return Metric.from_json({"name": "m", "provider": {"envoy": {"metric": name}}})


def test_the_envoy_provider_reads_numbers_through_the_agent_api(
    shoal_server_factory: ServerFactory,
) -> None:
    server = shoal_server_factory(agent=False)
    agent = ShoalAgent(server, "remote")
    agent.start()
    try:
        port, client = free_port(), server.client
        client.apply_all([canary("web", [{"setWeight": 50}]), service("web", port)])

        def stable() -> str | None:
            rollout = client.get(Deployment, "web").status.rollout
            healthy = rollout is not None and rollout.phase == "Healthy"
            return rollout.stable_hash if healthy and rollout is not None else None

        stable_hash = wait_for("web healthy", stable)
        with httpx.Client(timeout=5) as http:
            for _ in range(30):
                assert http.get(f"http://127.0.0.1:{port}/").status_code == 200
        node = client.get(Node, "remote")
        assert node.status.agent_port is not None
        agent_url = f"http://{node.status.address}:{node.status.agent_port}"
        cluster = cluster_name("default", "web", stable_hash)
        target = Target(clusters=(cluster,), agents={"remote": agent_url})

        def counted() -> Any:
            observed = asyncio.run(measure(envoy_metric("requestCount"), target))
            assert observed.error is None, observed.error
            return observed if observed.value >= 30 else None

        observed = wait_for("Envoy's count through the agent", counted, timeout=10)
        assert observed.snapshot[f"remote|{cluster}"]["2xx"] >= 30
        rate = asyncio.run(measure(envoy_metric("successRate"), target))
        assert rate.value == 1.0 and rate.details["requests"] >= 30
        time.sleep(1.2)  # Envoy flushes histograms once a second
        p99 = asyncio.run(measure(envoy_metric("p99"), target))
        assert p99.error is None and p99.value is not None and 0 < p99.value < 1000
        refused = httpx.get(f"{agent_url}/envoy/stats", params={"cluster": ".*"}, timeout=5)
        assert refused.status_code == 400
    finally:
        assert agent.stop() == 0, agent.log()[-3000:]


def failing_template(namespace: str) -> dict[str, Any]:
    """An analysis that fails at its first measurement (`false` exits 1)."""
    metric = {
        "name": "smoke",
        "interval": "1s",
        "count": 1,
        "provider": {"exec": {"command": ["false"]}},
    }
    return {
        "apiVersion": "shoal/v1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "smoke", "namespace": namespace},
        "spec": {"metrics": [metric]},
    }


def test_apply_wait_returns_at_a_pause_and_fails_on_a_degraded_rollout(
    shoal_server: ShoalServer, tmp_path: Path
) -> None:
    ns, port = "waits", free_port()
    steps = [
        {"setWeight": 50},
        {"pause": {}},
        {"analysis": {"templates": [{"templateName": "smoke"}]}},
    ]

    def manifest(version: str) -> Path:
        doc = canary("web", steps, version=version, namespace=ns)
        path = tmp_path / f"web-{version}.json"
        path.write_text(json.dumps({"kind": "List", "items": [doc]}))
        return path

    shoal_server.client.apply_all([failing_template(ns), service("web", port, ns)])
    first = shoal_server.cli("apply", "-f", str(manifest("v1")), "--wait", "--timeout", "60s")
    assert first.returncode == 0, first.stderr
    assert 'deployment "web" successfully rolled out' in first.stdout
    paused = shoal_server.cli("apply", "-f", str(manifest("v2")), "--wait", "--timeout", "60s")
    assert paused.returncode == 0, paused.stdout + paused.stderr
    assert (
        "rollout is paused at step 2/3 (pause), waiting for `shoal rollout promote "
        "deployment/web`" in paused.stdout
    ), paused.stdout
    promoted = shoal_server.cli("rollout", "promote", "deployment/web", "-n", ns)
    assert promoted.returncode == 0, promoted.stderr
    degraded = shoal_server.cli("apply", "-f", str(manifest("v2")), "--wait", "--timeout", "60s")
    assert degraded.returncode != 0, degraded.stdout
    assert "rollout is Degraded: analysis" in degraded.stderr and "smoke" in degraded.stderr
