"""controllers.parallel_run (pure parts): when a differ is wanted, the differ Pod it runs, the
comparison Pods it replays to and the DiffReport it creates; differ.pod: the differ's
configuration from the Pod's environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shoal.agent.podprocess import assign_ports
from shoal.agent.routing import target_port
from shoal.api.deployment import Deployment
from shoal.api.pod import Pod, PodTemplateSpec
from shoal.api.rollout import RolloutStatus, TrafficRouting
from shoal.api.selectors import LabelSelector, parse_selector
from shoal.api.service import Service
from shoal.controllers.parallel_run import (
    BACKGROUND_NICE,
    BACKGROUND_WRAPPER,
    COMPARE_LABEL,
    COMPARE_ROLE_LABEL,
    DIFFER_LABEL,
    comparing,
    comparison_pods,
    diff_report,
    differ_pod,
    wanted_pods,
)
from shoal.controllers.strategies.parallel import ATTEMPT_ANNOTATION
from shoal.differ.pod import CONFIG_VARIABLE, PORTS_VARIABLE, config_from_environment

PORTS: list[dict[str, Any]] = [{"name": "http"}, {"name": "admin", "containerPort": 9100}]


def deployment(
    strategy_type: str = "ParallelRun", ports: list[dict[str, Any]] | None = None, **rollout: Any
) -> Deployment:
    strategy: dict[str, Any] = {"type": strategy_type}
    if strategy_type == "ParallelRun":
        strategy["parallelRun"] = {
            "methods": ["GET"],
            "compare": {"ignoreFields": ["requestId"]},
        }
    d = Deployment.from_json(
        {
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "tier": "front"}},
                    "spec": {
                        "command": ["app", "--serve"],
                        "ports": PORTS if ports is None else ports,
                        "isolation": "sandbox",
                        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                    },
                },
                "strategy": strategy,
            },
        }
    )
    if rollout:
        traffic = TrafficRouting(stable=rollout.pop("stable", "old"))
        d.status.rollout = RolloutStatus(traffic=traffic, **rollout)
    return d


def test_a_differ_is_wanted_only_while_a_candidate_may_be_compared() -> None:
    assert comparing(deployment(stable_hash="old", new_hash="new")) == ("old", "new", 0)
    assert comparing(deployment(stable_hash="old", new_hash=None)) is None
    assert comparing(deployment(stable_hash="old", new_hash="new", aborted=True)) is None
    assert comparing(deployment(stable_hash="new", new_hash="new")) is None
    assert comparing(deployment(stable_hash="old", new_hash="new", stable=None)) is None
    assert comparing(deployment("BlueGreen", stable_hash="old", new_hash="new")) is None
    assert comparing(deployment()) is None


def test_the_differ_pod_is_owned_selected_by_the_services_and_configured_by_environment() -> None:
    pod = differ_pod(deployment(stable_hash="old", new_hash="new"), "old", "new")
    assert pod.metadata.name == "web-differ-new"
    assert pod.metadata.labels == {"app": "web", "tier": "front", DIFFER_LABEL: "web"}
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.uid, owner.controller) == ("Deployment", "uid-web", True)
    assert pod.spec.command == [sys.executable, "-m", "shoal.differ.pod"]
    assert pod.spec.isolation == "none"  # shoal's own code, whatever the template's isolation
    # Every port name of the app, numbers allocated: a Service targeting any of them finds it.
    assert [(p.name, p.container_port) for p in pod.spec.ports] == [("http", None), ("admin", None)]
    env = {v.name: v.value for v in pod.spec.env}
    assert env[PORTS_VARIABLE] == "http,admin"
    config = config_from_environment(
        {
            **env,
            "PORT": "31000",
            "PORT_HTTP": "31000",
            "PORT_ADMIN": "31001",
            "SHOAL_SERVER": "http://127.0.0.1:7070",
        }
    )
    assert config.listen == "127.0.0.1:31000"
    assert config.ports == {"admin": "127.0.0.1:31001"}  # replayed to the instances' admin
    assert config.server == "http://127.0.0.1:7070"
    # The differ replays to the comparison Pods, never to the live pods (app=web).
    assert config.primary.selector == f"{COMPARE_LABEL}=web,pod-template-hash=old"
    assert config.candidate.selector == f"{COMPARE_LABEL}=web,pod-template-hash=new"
    assert (config.concurrency, config.queue_size, config.nice) == (4, 16, BACKGROUND_NICE)
    assert config.idle  # SCHED_IDLE: a waking live task preempts it at once
    assert config.max_rate == 50  # the comparison's CPU is bounded whatever the traffic
    assert config.methods == ["GET"]
    assert config.compare.ignore_fields == ["requestId"]
    assert config.report_name == "web-new"
    assert (config.namespace, config.deployment) == ("shop", "web")


def test_the_report_is_named_for_the_candidate_and_owned_by_the_deployment() -> None:
    report = diff_report(deployment(stable_hash="old", new_hash="new"), "old", "new")
    assert (report.metadata.name, report.metadata.namespace) == ("web-new", "shop")
    assert report.metadata.owner_references[0].uid == "uid-web"
    assert (report.spec.primary_revision, report.spec.candidate_revision) == ("old", "new")


def test_a_differ_pod_without_its_environment_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match="PORT"):
        config_from_environment({CONFIG_VARIABLE: "{}", "SHOAL_SERVER": "http://x"})
    document = json.dumps({"deployment": "web", "primary": {}, "candidate": {"addresses": []}})
    with pytest.raises(ValueError, match="primary"):
        config_from_environment(
            {CONFIG_VARIABLE: document, "PORT": "1", "SHOAL_SERVER": "http://x"}
        )


def test_a_retried_attempt_gets_a_fresh_differ_and_report() -> None:
    d = deployment(stable_hash="old", new_hash="new", attempt=1)
    assert comparing(d) == ("old", "new", 1)
    assert differ_pod(d, "old", "new", 1).metadata.name == "web-differ-new-1"
    report = diff_report(d, "old", "new", 1)
    assert report.metadata.annotations[ATTEMPT_ANNOTATION] == "1"


def test_an_unnamed_or_missing_app_port_still_gives_the_differ_a_probed_port() -> None:
    for ports in ([], [{}]):
        pod = differ_pod(deployment(ports=ports, stable_hash="o", new_hash="n"), "o", "n")
        assert [p.name for p in pod.spec.ports] == ["differ"]
        probe = pod.spec.readiness_probe
        assert probe is not None and probe.http_get is not None
        assert probe.http_get.port == "differ"
    env = {v.name: v.value for v in pod.spec.env}
    config = config_from_environment(
        {**env, "PORT": "31000", "PORT_DIFFER": "31000", "SHOAL_SERVER": "http://x"}
    )
    assert config.ports == {}
    with pytest.raises(ValueError, match="PORT_ADMIN"):
        config_from_environment(
            {**env, PORTS_VARIABLE: "admin", "PORT": "1", "SHOAL_SERVER": "http://x"}
        )


def test_a_service_targeting_the_second_port_mirrors_to_the_differs_port_of_that_name() -> None:
    pod = differ_pod(deployment(stable_hash="o", new_hash="n"), "o", "n")
    ports, primary = assign_ports(pod.spec, {"http": 31000, "admin": 31001})
    pod.status.host_ports, pod.status.host_port = ports, primary
    admin = Service.new(
        "web-admin", spec={"selector": {"app": "web"}, "port": 1, "targetPort": "admin"}
    )
    assert target_port(admin, pod) == 31001


def primary_template() -> PodTemplateSpec:
    template = deployment().spec.template.model_copy(deep=True)
    template.spec.command = ["app-v1"]
    return template


def test_comparison_pods_run_both_versions_apart_from_live_traffic_at_low_priority() -> None:
    d = deployment(stable_hash="old", new_hash="new")
    pods = comparison_pods(d, primary_template(), "old", "new")
    assert [p.metadata.name for p in pods] == [
        "web-compare-old-primary",
        "web-compare-old-secondary",
        "web-compare-new-candidate",
    ]
    primary, _, candidate = pods
    assert primary.spec.command == [*BACKGROUND_WRAPPER, "app-v1"]
    assert candidate.spec.command == [*BACKGROUND_WRAPPER, "app", "--serve"]
    assert candidate.metadata.labels == {
        COMPARE_LABEL: "web",
        COMPARE_ROLE_LABEL: "candidate",
        "pod-template-hash": "new",
    }
    for pod in pods:
        assert pod.metadata.owner_references[0].uid == "uid-web"
        # Neither the Deployment's Services nor its ReplicaSets select them: no live request.
        assert not LabelSelector(match_labels={"app": "web"}).matches(pod.metadata.labels)
        assert [(p.name, p.container_port) for p in pod.spec.ports] == [
            ("http", None),
            ("admin", None),  # a fixed number would clash with the live pod on its node
        ]
        assert pod.spec.isolation == "sandbox"  # the app's own isolation
        assert pod.spec.resources.requests.cpu == "0"  # reserves no CPU (background work)
        assert pod.spec.resources.limits.cpu == "500m"  # the app's limit stays
        assert pod.spec.readiness_probe == d.spec.template.spec.readiness_probe
    selector = config_from_environment(
        {
            **{v.name: v.value for v in differ_pod(d, "old", "new").spec.env},
            "PORT": "1",
            "PORT_HTTP": "1",
            "PORT_ADMIN": "2",
            "SHOAL_SERVER": "http://x",
        }
    ).primary.selector
    assert selector is not None
    found = [p for p in pods if parse_selector(selector).matches(p.metadata.labels)]
    assert [p.metadata.labels[COMPARE_ROLE_LABEL] for p in found] == ["primary", "secondary"]


def test_the_wanted_pods_follow_the_run_and_wait_for_the_primarys_template() -> None:
    d = deployment(stable_hash="old", new_hash="new")
    names = [p.metadata.name for p in wanted_pods(d, None)]
    assert names == ["web-compare-new-candidate", "web-differ-new"]
    names = [p.metadata.name for p in wanted_pods(d, primary_template())]
    assert len(names) == 4 and "web-compare-old-secondary" in names
    assert wanted_pods(deployment(stable_hash="old", new_hash="new", aborted=True), None) == []
    assert all(isinstance(p, Pod) for p in wanted_pods(d, None))


def test_the_background_wrapper_lowers_the_process_and_its_session_then_runs_the_command() -> None:
    probe = (
        "import os, pathlib, sys; group = pathlib.Path('/proc/self/autogroup'); "
        "print(os.nice(0), group.read_text().split()[-1] if group.exists() else 'none', "
        "os.sched_getscheduler(0) == os.SCHED_IDLE, sys.argv[1:])"
    )
    # A session of its own, as the agent starts every pod (each session is an autogroup).
    done = subprocess.run(
        [*BACKGROUND_WRAPPER, sys.executable, "-c", probe, "a b", "c"],
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,
        check=True,
    )
    niceness, group, idle, args = done.stdout.split(" ", 3)
    assert int(niceness) == BACKGROUND_NICE
    assert group in ("none", str(BACKGROUND_NICE))  # "none": a kernel without autogroups
    assert idle == str(shutil.which("chrt") is not None)  # SCHED_IDLE where chrt exists
    assert args.strip() == "['a b', 'c']"  # arguments pass through untouched


def test_without_chrt_the_wrapper_still_runs_the_command_at_low_priority(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("nice", "sh"):  # a PATH with no chrt
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    probe = "import os; print(os.nice(0), os.sched_getscheduler(0) == os.SCHED_IDLE)"
    done = subprocess.run(
        [*BACKGROUND_WRAPPER, sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": str(bin_dir)},
        check=True,
    )
    assert done.stdout.split() == [str(BACKGROUND_NICE), "False"]


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/proc/self/autogroup").exists(),
    reason="needs root (to run the wrapper as an unprivileged uid) and a kernel with autogroups",
)
def test_three_unprivileged_wrappers_started_at_once_all_lower_their_autogroup() -> None:
    # The kernel allows an unprivileged autogroup change once per 100 ms machine-wide; a
    # parallel run starts three sandboxed comparison pods at once, so the wrapper retries.
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    runs = [
        subprocess.Popen(
            [*as_nobody, *BACKGROUND_WRAPPER, "cat", "/proc/self/autogroup"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=30)[0] for run in runs]
    assert [out.split()[-1] for out in outputs] == [str(BACKGROUND_NICE)] * 3, outputs
