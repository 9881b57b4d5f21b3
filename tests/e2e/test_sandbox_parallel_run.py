"""A ParallelRun of sandboxed pods (the default isolation), with `shoal server`, its embedded
agent, Envoy and real sandboxed processes:

- the differ Pod runs with `isolation: none` (shoal's own code, the control plane's Python)
  whatever the pods' default, and compares;
- the comparison Pods keep the template's isolation (sandboxed like the live pods) and run
  their app at niceness 19 and SCHED_IDLE (the wrapper works inside the sandbox);
- the run passes and promotes under live load, and no live request fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import psutil
import pytest
from agent_harness import ShoalServer, free_port, service, under_load, wait_for
from sandbox_harness import app_fixtures, app_in_sandbox, pod_tree, requires_sandbox, servers_under

from shoal.api.deployment import Deployment
from shoal.api.diffreport import DiffReport, report_name
from shoal.api.errors import NotFound
from shoal.api.pod import Pod
from shoal.controllers.parallel_run import (
    BACKGROUND_NICE,
    COMPARE_LABEL,
    COMPARE_ROLE_LABEL,
    DIFFER_LABEL,
)

pytestmark = [pytest.mark.e2e, requires_sandbox()]
base, app = app_fixtures()

SETTINGS = {
    "mirrorPercent": 100,
    "minSamples": 30,
    "duration": "3s",
    "maxDiffRate": 0.01,
    "compare": {"ignoreFields": ["version"], "ignoreHeaders": ["x-version"]},
    "then": "promote",
}


def parallel_in_sandbox(app: Path, version: str) -> dict[str, Any]:
    doc = app_in_sandbox("web", app, replicas=2, version=version, env={"RANDOM_FIELD": "1"})
    doc["spec"]["strategy"] = {"type": "ParallelRun", "parallelRun": SETTINGS}
    return doc


def healthy_at(server: ShoalServer, revision: str | None = None) -> bool:
    rollout = server.client.get(Deployment, "web").status.rollout
    return (
        rollout is not None
        and rollout.phase == "Healthy"
        and (revision is None or rollout.stable_hash == revision)
    )


def compared(server: ShoalServer, candidate: str) -> int:
    try:
        return server.client.get(DiffReport, report_name("web", candidate)).status.compared
    except NotFound:
        return 0


def niceness_of_apps(pod: Pod) -> list[tuple[int, str, bool]]:
    """(niceness, autogroup niceness or "none", SCHED_IDLE) of the probe app's processes in a
    pod's tree (bwrap's own processes, whose arguments name the app too, left out)."""
    assert pod.status.pid is not None
    found = []
    for process in pod_tree(pod.status.pid):
        try:
            if process.name() != "bwrap" and any("probe_app" in p for p in process.cmdline()):
                group = Path(f"/proc/{process.pid}/autogroup")
                found.append(
                    (
                        process.nice(),
                        group.read_text().split()[-1] if group.exists() else "none",
                        os.sched_getscheduler(process.pid) == os.SCHED_IDLE,
                    )
                )
        except (psutil.Error, OSError):
            continue
    return found


def test_a_parallel_run_of_sandboxed_pods_compares_and_promotes(base: Path, app: Path) -> None:
    with servers_under(base) as start:
        server, port = start(), free_port()
        server.client.apply_all([parallel_in_sandbox(app, "v1"), service("web", port)])
        wait_for("v1 healthy", lambda: healthy_at(server), 90)
        with under_load(port, clients=4, path="/price") as load:
            server.client.apply_all([parallel_in_sandbox(app, "v2")])

            def candidate() -> str | None:
                rollout = server.client.get(Deployment, "web").status.rollout
                return rollout.new_hash if rollout and rollout.traffic.canary else None

            wait_for("the comparison", lambda: candidate() is not None, 90)
            revision = candidate()
            assert revision is not None
            wait_for("samples compared", lambda: compared(server, revision) >= 10, 90)
            (differ,) = server.client.list(Pod, "default", selector=f"{DIFFER_LABEL}=web").items
            assert differ.spec.isolation == "none"
            pods = server.client.list(Pod, "default", selector=f"{COMPARE_LABEL}=web").items
            roles = sorted(p.metadata.labels[COMPARE_ROLE_LABEL] for p in pods)
            assert roles == ["candidate", "primary", "secondary"]
            for pod in pods:
                assert pod.spec.isolation is None  # the template's: the default sandbox
                found = niceness_of_apps(pod)
                assert [nice for nice, _, _ in found] == [BACKGROUND_NICE], (
                    pod.metadata.name,
                    found,
                )
                # Its session's autogroup too, where the kernel has them; SCHED_IDLE with chrt.
                assert found[0][1] in (str(BACKGROUND_NICE), "none"), (pod.metadata.name, found)
                assert found[0][2] == (shutil.which("chrt") is not None), (pod.metadata.name, found)
            wait_for("the promotion", lambda: healthy_at(server, revision), 90)
        assert load.failed == 0, load.errors
        assert load.versions(since=0) <= {"v1", "v2"}
