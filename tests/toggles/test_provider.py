"""The OpenFeature provider through the standard OpenFeature API, over an offline SDK client
that answers from a snapshot file."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from shoal.api.featuretoggle import FeatureToggleSpec
from shoal.toggles.client import ToggleClient
from shoal.toggles.engine import evaluate_spec
from shoal.toggles.provider import ShoalProvider, context_attributes

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text())
SPECS = {t["name"]: t["spec"] for t in VECTORS["toggles"]}
EXTRA = {
    "numbers": {"enabled": True, "variants": [{"name": "only", "weight": 100, "payload": 7}]},
    "ratio": {"enabled": True, "variants": [{"name": "only", "weight": 100, "payload": 0.25}]},
}


@pytest.fixture
def openfeature_client(tmp_path: Path) -> Iterator[OpenFeatureClient]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    items = [
        {
            "apiVersion": "shoal/v1",
            "kind": "FeatureToggle",
            "metadata": {"name": name, "namespace": "vectors"},
            "spec": spec,
        }
        for name, spec in {**SPECS, **EXTRA}.items()
    ]
    snapshot = tmp_path / "toggles.json"
    snapshot.write_text(json.dumps({"revision": 3, "items": items}))
    toggles = ToggleClient(
        f"http://127.0.0.1:{port}", "vectors", snapshot_path=snapshot, wait_seconds=0
    )
    api.set_provider(ShoalProvider(toggles))
    yield api.get_client()
    api.shutdown()
    toggles.close()


def test_boolean_vectors_through_openfeature(openfeature_client: OpenFeatureClient) -> None:
    for case in VECTORS["cases"]:
        context = EvaluationContext(attributes=case["context"])
        details = openfeature_client.get_boolean_details(case["toggle"], False, context)
        assert details.value is case["expect"]["value"], case
        assert details.error_code is None


def test_targeting_key_is_the_user_id(openfeature_client: OpenFeatureClient) -> None:
    for user in ("user-1", "42", "7"):
        details = openfeature_client.get_boolean_details(
            "rollout-30", False, EvaluationContext(targeting_key=user)
        )
        expected = evaluate_spec(
            "rollout-30", FeatureToggleSpec.model_validate(SPECS["rollout-30"]), {"userId": user}
        )
        assert details.value is expected.value
        assert details.reason == Reason.SPLIT
    assert context_attributes(EvaluationContext("a", {"userId": "b"}))["userId"] == "b"


def test_reasons_are_mapped(openfeature_client: OpenFeatureClient) -> None:
    def reason(name: str, attributes: dict[str, str]) -> str | None:
        details = openfeature_client.get_boolean_details(
            name, True, EvaluationContext(attributes=attributes)
        )
        return details.reason

    assert reason("off", {}) == Reason.DISABLED
    assert reason("op-in", {"country": "de"}) == Reason.TARGETING_MATCH
    assert reason("everyone", {}) == Reason.STATIC


def test_string_and_object_come_from_the_variant(openfeature_client: OpenFeatureClient) -> None:
    case = next(c for c in VECTORS["cases"] if c["expect"]["reason"] == "variant")
    context = EvaluationContext(attributes=case["context"])
    name = openfeature_client.get_string_details("checkout-variants", "none", context)
    assert name.value == case["expect"]["variant"]
    assert name.variant == case["expect"]["variant"]
    payload = case["expect"]["payload"]
    obj = openfeature_client.get_object_details("checkout-variants", {}, context)
    if isinstance(payload, dict):
        assert obj.value == payload
    else:
        assert obj.error_code == ErrorCode.TYPE_MISMATCH
    assert openfeature_client.get_integer_value("numbers", 0) == 7
    assert openfeature_client.get_float_value("ratio", 0.0) == 0.25
    off = openfeature_client.get_string_details("variants-off", "fallback")
    assert (off.value, off.reason) == ("fallback", Reason.DISABLED)


def test_unknown_flag_is_flag_not_found(openfeature_client: OpenFeatureClient) -> None:
    details = openfeature_client.get_boolean_details("nope", True)
    assert details.value is True
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND
