"""controllers.parallel_run (pure parts): when a differ is wanted, the differ Pod it runs and
the DiffReport it creates; differ.pod: the differ's configuration from the Pod's environment."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from shoal.api.deployment import Deployment
from shoal.api.rollout import RolloutStatus, TrafficRouting
from shoal.controllers.parallel_run import (
    DIFFER_LABEL,
    comparing,
    diff_report,
    differ_pod,
)
from shoal.controllers.strategies.parallel import ATTEMPT_ANNOTATION
from shoal.differ.pod import CONFIG_VARIABLE, config_from_environment


def deployment(strategy_type: str = "ParallelRun", **rollout: Any) -> Deployment:
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
                    "spec": {"command": ["x"], "ports": [{"name": "http"}]},
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
    assert pod.spec.isolation == "none"
    assert [p.name for p in pod.spec.ports] == ["http"]  # a Service's targetPort: http finds it
    env = {v.name: v.value for v in pod.spec.env}
    config = config_from_environment(
        {**env, "PORT": "31000", "SHOAL_SERVER": "http://127.0.0.1:7070"}
    )
    assert config.listen == "127.0.0.1:31000"
    assert config.server == "http://127.0.0.1:7070"
    assert config.primary.selector == "app=web,pod-template-hash=old"
    assert config.candidate.selector == "app=web,pod-template-hash=new"
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
