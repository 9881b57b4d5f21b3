"""Validation of the core kinds: every bad field is reported with its Kubernetes field path."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shoal.api.deployment import Deployment
from shoal.api.errors import causes_from_validation
from shoal.api.pod import Pod
from shoal.api.registry import resolve_kind
from shoal.api.service import Service


def deployment(**spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"command": ["python3", "-m", "http.server"], "ports": [{"name": "http"}]},
        },
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "shoal/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": spec,
    }


def fields_of(doc: dict[str, Any], model: type[Any] = Deployment) -> set[str]:
    with pytest.raises(ValidationError) as info:
        model.from_json(doc)
    return {cause.field for cause in causes_from_validation(info.value)}


def test_valid_deployment_gets_defaults() -> None:
    model = Deployment.from_json(deployment())
    assert model.metadata.namespace == "default"
    assert model.spec.strategy.type == "RollingUpdate"
    assert model.spec.strategy.rolling_update is not None
    assert model.spec.strategy.rolling_update.max_surge == "25%"
    assert model.to_json()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30


def test_negative_replicas_names_the_field() -> None:
    assert fields_of(deployment(replicas=-1)) == {"spec.replicas"}


def test_unknown_field_names_the_field() -> None:
    doc = deployment()
    doc["spec"]["template"]["spec"]["comand"] = ["x"]
    assert "spec.template.spec.comand" in fields_of(doc)


def test_missing_selector_names_the_field() -> None:
    doc = deployment()
    del doc["spec"]["selector"]
    assert fields_of(doc) == {"spec.selector"}


def test_selector_must_match_template_labels() -> None:
    doc = deployment(selector={"matchLabels": {"app": "other"}})
    assert fields_of(doc) == {"spec.selector"}


def test_bad_probe_period_names_the_nested_field() -> None:
    doc = deployment()
    doc["spec"]["template"]["spec"]["readinessProbe"] = {
        "httpGet": {"port": "http"},
        "periodSeconds": 0,
    }
    assert fields_of(doc) == {"spec.template.spec.readinessProbe.periodSeconds"}


def test_every_cause_is_reported_at_once() -> None:
    doc = deployment(replicas=-1, minReadySeconds="soon")
    doc["metadata"]["name"] = "Bad_Name"
    assert fields_of(doc) >= {"spec.replicas", "spec.minReadySeconds", "metadata.name"}


def test_list_items_are_indexed_in_the_path() -> None:
    doc = deployment()
    doc["spec"]["template"]["spec"]["env"] = [{"name": "OK", "value": "1"}, {"name": "1BAD"}]
    assert fields_of(doc) == {"spec.template.spec.env[1].name"}


@pytest.mark.parametrize("quantity", ["lots", "1.2.3", "-5", "10X"])
def test_bad_quantities_are_rejected(quantity: str) -> None:
    doc = deployment()
    doc["spec"]["template"]["spec"]["resources"] = {"requests": {"cpu": quantity}}
    assert fields_of(doc) == {"spec.template.spec.resources.requests.cpu"}


def test_a_request_above_its_limit_is_rejected() -> None:
    doc = deployment()
    doc["spec"]["template"]["spec"]["resources"] = {
        "requests": {"cpu": "2", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "64Mi"},
    }
    assert fields_of(doc) == {"spec.template.spec.resources"}
    doc["spec"]["template"]["spec"]["resources"]["requests"]["cpu"] = "500m"
    Deployment.from_json(doc)  # equal is fine


@pytest.mark.parametrize("value", [-1, "120%", "abc"])
def test_bad_max_surge(value: Any) -> None:
    doc = deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": value}})
    assert fields_of(doc) == {"spec.strategy.rollingUpdate.maxSurge"}


def test_surge_and_unavailable_may_not_both_be_zero() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}
    assert fields_of(deployment(strategy=strategy)) == {"spec.strategy.rollingUpdate"}


def test_probe_needs_exactly_one_handler() -> None:
    doc = {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"command": ["true"], "livenessProbe": {"periodSeconds": 1}},
    }
    assert fields_of(doc, Pod) == {"spec.livenessProbe"}


def test_kind_must_match_the_model() -> None:
    doc = deployment()
    doc["kind"] = "Pod"
    assert fields_of(doc) == {"kind"}


def test_bad_labels_are_rejected() -> None:
    doc = {
        "apiVersion": "shoal/v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": {"bad key!": "x"}},
        "spec": {"selector": {"app": "web"}, "port": 8080},
    }
    assert fields_of(doc, Service) == {"metadata.labels"}


def test_service_port_range() -> None:
    doc = {
        "apiVersion": "shoal/v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "port": 70000},
    }
    assert fields_of(doc, Service) == {"spec.port"}


@pytest.mark.parametrize(
    ("name", "kind"),
    [("po", "Pod"), ("pods", "Pod"), ("Deployment", "Deployment"), ("rs", "ReplicaSet")],
)
def test_resolve_kind(name: str, kind: str) -> None:
    assert kind == resolve_kind(name).KIND


def test_resolve_unknown_kind_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="known: "):
        resolve_kind("widgets")
