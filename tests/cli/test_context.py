"""Kind names, KIND/NAME references and where a command acts."""

from __future__ import annotations

import pytest
import typer

from shoal.api.deployment import Deployment
from shoal.api.event import Event
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet
from shoal.api.service import Service
from shoal.cli.context import (
    DEFAULT_SERVER,
    RootOptions,
    is_generic,
    remember_root_options,
    resolve,
    split_reference,
    target,
)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("po", Pod),
        ("pods", Pod),
        ("Pod", Pod),
        ("deploy", Deployment),
        ("deployments", Deployment),
        ("rs", ReplicaSet),
        ("svc", Service),
        ("no", Node),
        ("nodes", Node),
        ("ev", Event),
    ],
)
def test_resolve_known_kinds(name: str, cls: type[object]) -> None:
    assert resolve(name) is cls


def test_feature_kinds_are_loaded_on_demand() -> None:
    cls = resolve("featuretoggles")
    assert cls.KIND == "FeatureToggle"
    assert not is_generic(cls)


def test_unknown_kind_becomes_a_generic_resource_at_its_plural() -> None:
    cls = resolve("Widget")
    assert is_generic(cls)
    assert cls.PLURAL == "widgets"
    obj = cls.from_json(
        {
            "apiVersion": "shoal/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"anything": [1, 2]},
        }
    )
    assert obj.to_json()["spec"] == {"anything": [1, 2]}


def test_split_reference() -> None:
    assert split_reference("deployment/web") == ("deployment", "web")
    assert split_reference("deployment", "web") == ("deployment", "web")
    assert split_reference("pods") == ("pods", None)
    with pytest.raises(typer.BadParameter):
        split_reference("deployment/web", "other")
    with pytest.raises(typer.BadParameter):
        split_reference("deployment/")


def test_target_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOAL_SERVER", raising=False)
    remember_root_options(RootOptions())
    assert target() == target(None, None)
    assert target().server == DEFAULT_SERVER
    assert target().namespace == "default"
    assert not target().namespace_explicit
    monkeypatch.setenv("SHOAL_SERVER", "http://127.0.0.1:9999/")
    assert target().server == "http://127.0.0.1:9999"
    remember_root_options(RootOptions(server="http://127.0.0.1:8888", namespace="shop"))
    assert target().server == "http://127.0.0.1:8888"
    assert target().namespace == "shop"
    assert target().namespace_explicit
    chosen = target("http://127.0.0.1:7777", "dev")
    assert (chosen.server, chosen.namespace) == ("http://127.0.0.1:7777", "dev")
    remember_root_options(RootOptions())


def test_every_registered_feature_kind_resolves() -> None:
    assert resolve("diffreports").KIND == "DiffReport"
