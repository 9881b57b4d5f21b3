"""`strategy.type: ParallelRun` end to end, as a user runs it: a real `shoal server` (API,
controllers, embedded agent, Envoy), pods of tests/apps/probe_app.py (`isolation: none`), the
differ run by the controller as a Pod, continuous live load through the Service port.

- a candidate that differs only by the random `requestId` (and its version label, ignored by
  the compare options): `requestId` is learned as noise, diff rate 0, `then: pause` waits,
  POSTs were never mirrored (the candidate received none), `shoal rollout promote` switches
  the active port to the candidate; no live request failed;
- a candidate rounding the price up: a difference at exactly `price` with an example, the
  rollout aborts by itself (Degraded, reason naming `price`, a RolloutAborted event, the
  candidate scaled down, the differ Pod gone) and every live answer came from the primary;
  `shoal rollout retry` compares again from zero (fresh differ and report) and aborts again;
- the differ killed (SIGKILL, by pid) in the middle of the run: no live request fails, the
  agent restarts the differ Pod and the run goes on to promote (`then: promote`);
- kill -9 of the server (API, controllers, embedded agent) mid-run: the restarted agent
  re-adopts the differ Pod's process and the run goes on to promote, no live request fails;
- bad settings (maxDiffRate 1.5, an unknown compare option) are rejected at apply with their
  field paths, and nothing is stored.

The differ replays to comparison Pods of its own (primary, secondary: v1; candidate: v2), not
to the pods that serve live traffic: the tests check that the live pods received no replay
and the candidate's ReplicaSet pods received nothing at all until the switch.

Every process is stopped by pid by the fixtures (leftovers fail the test).
"""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx
import psutil
import pytest
from agent_harness import ShoalServer, app_deployment, free_port, service, under_load, wait_for
from typer.testing import CliRunner

from shoal.api.deployment import POD_TEMPLATE_HASH_LABEL, Deployment
from shoal.api.diffreport import DiffReport, report_name
from shoal.api.errors import Invalid, NotFound
from shoal.api.event import Event
from shoal.api.pod import Pod
from shoal.cli.main import app as shoal_cli
from shoal.controllers.parallel_run import COMPARE_LABEL, COMPARE_ROLE_LABEL, DIFFER_LABEL
from shoal.controllers.strategies.parallel import ATTEMPT_ANNOTATION

pytestmark = pytest.mark.e2e

ROLLOUT_TIMEOUT = 60.0
COMPARE = {"ignoreFields": ["version"], "ignoreHeaders": ["x-version"]}


def parallel_app(version: str, settings: dict[str, Any], **env: str) -> dict[str, Any]:
    doc = app_deployment("web", version=version, replicas=2, env={"RANDOM_FIELD": "1", **env})
    doc["spec"]["strategy"] = {"type": "ParallelRun", "parallelRun": settings}
    return doc


def shoal(server: ShoalServer, *args: str) -> str:
    result = CliRunner().invoke(shoal_cli, ["--server", server.url, *args])
    assert result.exit_code == 0, result.output
    return result.output


def deployment(server: ShoalServer) -> Deployment:
    return server.client.get(Deployment, "web")


def phase(server: ShoalServer) -> str | None:
    rollout = deployment(server).status.rollout
    return rollout.phase if rollout is not None else None


def healthy_at(server: ShoalServer, revision: str | None = None) -> bool:
    rollout = deployment(server).status.rollout
    return (
        rollout is not None
        and rollout.phase == "Healthy"
        and (revision is None or rollout.stable_hash == revision)
    )


def candidate_hash(server: ShoalServer) -> str:
    wait_for("the candidate", lambda: (deployment(server).status.rollout or _none()).new_hash)
    found = (deployment(server).status.rollout or _none()).new_hash
    assert found is not None
    return found


def _none() -> Any:
    class Empty:
        new_hash = None
        stable_hash = None

    return Empty()


def revision_pods(server: ShoalServer, revision: str) -> list[Pod]:
    selector = f"app=web,{POD_TEMPLATE_HASH_LABEL}={revision}"
    return server.client.list(Pod, "default", selector=selector).items


def differ_pods(server: ShoalServer) -> list[Pod]:
    return server.client.list(Pod, "default", selector=f"{DIFFER_LABEL}=web").items


def comparison_pods(server: ShoalServer) -> dict[str, Pod]:
    found = server.client.list(Pod, "default", selector=f"{COMPARE_LABEL}=web").items
    return {pod.metadata.labels[COMPARE_ROLE_LABEL]: pod for pod in found}


def report(server: ShoalServer, revision: str) -> DiffReport | None:
    try:
        return server.client.get(DiffReport, report_name("web", revision))
    except NotFound:
        return None


def served_requests(pod: Pod) -> dict[str, Any]:
    answer = httpx.get(f"http://127.0.0.1:{pod.status.host_port}/__requests", timeout=5)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def test_noise_learned_post_never_mirrored_pause_then_promote(shoal_server: ShoalServer) -> None:
    port = free_port()
    settings = {
        "mirrorPercent": 100,
        "minSamples": 60,
        "duration": "2s",
        "maxDiffRate": 0.01,
        "compare": COMPARE,
        "then": "pause",
    }
    shoal_server.client.apply_all([parallel_app("v1", settings), service("web", port)])
    wait_for("v1 healthy", lambda: healthy_at(shoal_server), ROLLOUT_TIMEOUT)
    with under_load(port, clients=4, path="/price", post_every=4) as load:
        shoal_server.client.apply_all([parallel_app("v2", settings)])
        candidate = candidate_hash(shoal_server)
        wait_for("the parallel run to pass", lambda: phase(shoal_server) == "Paused", 60)
        found = report(shoal_server, candidate)
        assert found is not None
        assert found.metadata.owner_references[0].kind == "Deployment"
        assert found.status.compared >= 60 and found.status.differing == 0, found.status
        noise = {n.path for e in found.status.endpoints for n in e.noise}
        assert "requestId" in noise, found.status
        # Live traffic (GETs and POSTs) went to v1 only; the comparison candidate saw mirrored
        # GETs only; no replay reached a live pod, and the candidate's ReplicaSet (the pods
        # the switch will route to) received nothing at all.
        assert load.versions(since=0) == {"v1"}
        primary = (deployment(shoal_server).status.rollout or _none()).stable_hash
        assert primary is not None and primary != candidate
        live = [served_requests(pod) for pod in revision_pods(shoal_server, primary)]
        assert sum(c.get("GET", 0) for c in live) > 0 and all(not c["shadow"] for c in live), live
        idle = [served_requests(pod) for pod in revision_pods(shoal_server, candidate)]
        assert all(c.get("GET", 0) == c.get("POST", 0) == 0 for c in idle), idle
        compare = comparison_pods(shoal_server)
        assert sorted(compare) == ["candidate", "primary", "secondary"], compare
        assert compare["candidate"].metadata.labels[POD_TEMPLATE_HASH_LABEL] == candidate
        counts = {role: served_requests(pod) for role, pod in compare.items()}
        assert all(c.get("GET", 0) > 0 for c in counts.values()), counts
        assert all(c.get("POST", 0) == 0 for c in counts.values()), counts
        assert all(c.get("GET", 0) == c["shadow"].get("GET", 0) for c in counts.values()), counts
        diffs_text = shoal(shoal_server, "rollout", "diffs", "deployment/web")
        assert "GET /price" in diffs_text and "requestId" in diffs_text, diffs_text
        status_text = shoal(shoal_server, "rollout", "status", "deployment/web", "--no-watch")
        assert "100% of GET,HEAD mirrored to the differ" in status_text, status_text
        assert "differing 0" in status_text, status_text
        shoal(shoal_server, "rollout", "promote", "deployment/web")
        wait_for("the switch", lambda: healthy_at(shoal_server, candidate), ROLLOUT_TIMEOUT)
        wait_for("the candidate answering", lambda: _version(port) == "v2")
        wait_for("the differ gone", lambda: not differ_pods(shoal_server), 30)
        wait_for("the comparison pods gone", lambda: not comparison_pods(shoal_server), 30)
    assert load.failed == 0, load.errors
    shoal_server.client.delete(Deployment, "web")  # its reports go with it (owner references)
    wait_for("the report collected", lambda: report(shoal_server, candidate) is None, 30)


def _version(port: int) -> str:
    return str(httpx.get(f"http://127.0.0.1:{port}/version", timeout=5).headers["x-version"])


def test_changed_price_aborts_and_users_only_saw_the_primary(shoal_server: ShoalServer) -> None:
    port = free_port()
    settings = {
        "mirrorPercent": 100,
        "minSamples": 40,
        "duration": "60s",
        "maxDiffRate": 0.05,
        "compare": COMPARE,
    }
    shoal_server.client.apply_all([parallel_app("v1", settings), service("web", port)])
    wait_for("v1 healthy", lambda: healthy_at(shoal_server), ROLLOUT_TIMEOUT)
    with under_load(port, clients=4, path="/price") as load:
        shoal_server.client.apply_all([parallel_app("v2", settings, PRICE_ROUNDING="up")])
        candidate = candidate_hash(shoal_server)
        wait_for("the abort", lambda: phase(shoal_server) == "Degraded", 60)
        wait_for("the candidate scaled down", lambda: not revision_pods(shoal_server, candidate))
        wait_for("the differ gone", lambda: not differ_pods(shoal_server), 30)
        wait_for("the comparison pods gone", lambda: not comparison_pods(shoal_server), 30)
        first = check_abort(shoal_server, candidate)
        retry_aborts_again(shoal_server, candidate, first)
        wait_for("the differ gone", lambda: not differ_pods(shoal_server), 30)
    assert load.failed == 0, load.errors
    assert load.versions(since=0) == {"v1"}  # no user ever got a candidate answer


def check_abort(shoal_server: ShoalServer, candidate: str) -> DiffReport:
    current = deployment(shoal_server)
    rollout = current.status.rollout
    assert rollout is not None and rollout.aborted
    assert "price" in (rollout.abort_reason or ""), rollout.abort_reason
    progressing = [c for c in current.status.conditions if c.type == "Progressing"]
    assert progressing and "price" in (progressing[0].message or ""), progressing
    found = report(shoal_server, candidate)
    assert found is not None
    endpoint, top = found.status.top_fields(1)[0]
    assert (endpoint, top.path) == ("GET /price", "price")
    assert top.example is not None
    assert (top.example.primary, top.example.candidate) == ("19.99", "20.0")
    events = shoal_server.client.list(Event, "default").items
    assert any(e.reason == "RolloutAborted" and "price" in e.message for e in events)
    output = shoal(shoal_server, "rollout", "diffs", "deployment/web")
    assert "price" in output and "19.99" in output, output
    return found


def retry_aborts_again(shoal_server: ShoalServer, candidate: str, first: DiffReport) -> None:
    """A retry compares again from zero (a fresh differ Pod and report) and aborts again."""
    shoal(shoal_server, "rollout", "retry", "deployment/web")
    wait_for("the retry", lambda: phase(shoal_server) != "Degraded", 30)
    wait_for("the retried run's differ", lambda: bool(differ_pods(shoal_server)), 60)
    assert [p.metadata.name for p in differ_pods(shoal_server)] == [f"web-differ-{candidate}-1"]
    wait_for("the second abort", lambda: phase(shoal_server) == "Degraded", 60)
    again = report(shoal_server, candidate)
    assert again is not None
    assert again.metadata.annotations.get(ATTEMPT_ANNOTATION) == "1"
    assert again.metadata.uid != first.metadata.uid
    assert again.status.compared >= 40, again.status


def mid_run_settings(duration: str) -> dict[str, Any]:
    """A run that promotes by itself after `duration` (the kill tests: kill mid-run)."""
    return {
        "mirrorPercent": 100,
        "minSamples": 50,
        "duration": duration,
        "maxDiffRate": 0.01,
        "compare": COMPARE,
    }


def comparing_v2(server: ShoalServer, settings: dict[str, Any], compared: int) -> str:
    """Apply v2 and wait until its differ has compared `compared` requests; its revision."""
    server.client.apply_all([parallel_app("v2", settings)])
    candidate = candidate_hash(server)

    def comparing() -> bool:
        found = report(server, candidate)
        return found is not None and found.status.compared >= compared

    wait_for("the differ comparing", comparing, 60)
    return candidate


def test_differ_killed_mid_run_costs_no_live_request(shoal_server: ShoalServer) -> None:
    port = free_port()
    settings = mid_run_settings("8s")
    shoal_server.client.apply_all([parallel_app("v1", settings), service("web", port)])
    wait_for("v1 healthy", lambda: healthy_at(shoal_server), ROLLOUT_TIMEOUT)
    with under_load(port, clients=4, path="/price") as load:
        candidate = comparing_v2(shoal_server, settings, compared=20)
        (pod,) = differ_pods(shoal_server)
        assert pod.status.pid is not None
        before = load.total
        os.kill(pod.status.pid, signal.SIGKILL)
        wait_for(
            "the differ restarted",
            lambda: any(
                p.status.restart_count >= 1 and p.status.ready for p in differ_pods(shoal_server)
            ),
            30,
        )
        wait_for("the promotion", lambda: healthy_at(shoal_server, candidate), ROLLOUT_TIMEOUT)
        wait_for("the differ gone", lambda: not differ_pods(shoal_server), 30)
        assert load.total > before
    assert load.failed == 0, load.errors


def test_kill_9_of_the_server_mid_run_readopts_the_differ_and_the_run_goes_on(
    shoal_server: ShoalServer,
) -> None:
    port = free_port()
    settings = mid_run_settings("6s")
    shoal_server.client.apply_all([parallel_app("v1", settings), service("web", port)])
    wait_for("v1 healthy", lambda: healthy_at(shoal_server), ROLLOUT_TIMEOUT)
    with under_load(port, clients=4, path="/price") as load:
        candidate = comparing_v2(shoal_server, settings, compared=10)
        (pod,) = differ_pods(shoal_server)
        pid = pod.status.pid
        shoal_server.crash()  # API, controllers and agent die; pods and Envoy keep running
        assert pid is not None and psutil.pid_exists(pid)
        shoal_server.start()
        adopted = f"pod default/{pod.metadata.name}: re-adopted pid {pid}"
        wait_for("the differ re-adopted", lambda: adopted in shoal_server.log(), 30)
        wait_for("the promotion", lambda: healthy_at(shoal_server, candidate), ROLLOUT_TIMEOUT)
        again = report(shoal_server, candidate)
        assert again is not None and again.status.compared >= 50
        wait_for("the differ gone", lambda: not differ_pods(shoal_server), 30)
    assert load.failed == 0, load.errors


def test_bad_settings_rejected_at_apply_with_field_paths(shoal_server: ShoalServer) -> None:
    doc = parallel_app("v1", {"maxDiffRate": 1.5, "compare": {"sortArrays": True}})
    with pytest.raises(Invalid) as caught:
        shoal_server.client.apply_all([doc])
    fields = {cause.field for cause in caught.value.causes}
    prefix = "items[0].spec.strategy.parallelRun"
    assert f"{prefix}.maxDiffRate" in fields, fields
    assert f"{prefix}.compare.sortArrays" in fields, fields
    with pytest.raises(NotFound):
        shoal_server.client.get(Deployment, "web")
