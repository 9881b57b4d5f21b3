"""FeatureToggle validation: every bad input is rejected with the field path that is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shoal.api.errors import causes_from_validation
from shoal.api.featuretoggle import FeatureToggle
from shoal.api.registry import resolve_kind


def doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "FeatureToggle",
        "metadata": {"name": "new-checkout"},
        "spec": spec,
    }


def causes(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        FeatureToggle.from_json(document)
    return {c.field: c.message for c in causes_from_validation(caught.value)}


def test_registered_under_its_names() -> None:
    for name in ("FeatureToggle", "featuretoggles", "ft"):
        assert resolve_kind(name) is FeatureToggle


def test_a_full_toggle_round_trips() -> None:
    document = doc(
        enabled=True,
        description="new checkout page",
        owner="team-shop",
        rollout={"percentage": 25, "stickiness": "userId"},
        constraints=[
            {
                "contextName": "country",
                "operator": "in",
                "values": ["de", "fr"],
                "caseInsensitive": True,
            }
        ],
        variants=[{"name": "a", "weight": 60, "payload": {"x": 1}}, {"name": "b", "weight": 40}],
    )
    toggle = FeatureToggle.from_json(document)
    assert toggle.to_json()["spec"]["rollout"] == {
        "percentage": 25,
        "stickiness": "userId",
        "seed": "",
    }
    assert FeatureToggle.from_json(toggle.to_json()) == toggle


def test_defaults_are_off_and_everyone() -> None:
    toggle = FeatureToggle.from_json(doc())
    assert toggle.spec.enabled is False
    assert toggle.spec.rollout is None


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"rollout": {"percentage": 101}}, "spec.rollout.percentage", "less than or equal"),
        ({"rollout": {"percentage": -1}}, "spec.rollout.percentage", "greater than or equal"),
        (
            {"constraints": [{"contextName": "a", "operator": "like", "values": ["x"]}]},
            "spec.constraints[0].operator",
            "'in'",
        ),
        (
            {"constraints": [{"contextName": "v", "operator": "semver_gt", "values": ["1.2"]}]},
            "spec.constraints[0].values",
            "semantic version",
        ),
        (
            {"constraints": [{"contextName": "n", "operator": "num_lt", "values": ["ten"]}]},
            "spec.constraints[0].values",
            "not a number",
        ),
        (
            {"constraints": [{"contextName": "t", "operator": "date_after", "values": ["May"]}]},
            "spec.constraints[0].values",
            "ISO 8601",
        ),
        (
            {"constraints": [{"contextName": "n", "operator": "num_eq", "values": ["1", "2"]}]},
            "spec.constraints[0].values",
            "exactly one value",
        ),
        (
            {"constraints": [{"contextName": "a", "operator": "in", "values": []}]},
            "spec.constraints[0].values",
            "at least 1",
        ),
        (
            {"constraints": [{"contextName": "a", "operator": "in", "values": ["x"], "negate": 1}]},
            "spec.constraints[0].negate",
            "unknown field",
        ),
        (
            {"variants": [{"name": "a", "weight": 60}, {"name": "b", "weight": 30}]},
            "spec.variants",
            "sum to 100 (they sum to 90)",
        ),
        (
            {"variants": [{"name": "a", "weight": 50}, {"name": "a", "weight": 50}]},
            "spec.variants",
            "unique",
        ),
        (
            {
                "variants": [
                    {"name": "a", "weight": 50, "stickiness": "userId"},
                    {"name": "b", "weight": 50, "stickiness": "sessionId"},
                ]
            },
            "spec.variants",
            "same stickiness",
        ),
        ({"variants": [{"name": "a", "weight": 101}]}, "spec.variants[0].weight", "less than"),
        ({"enabled": "perhaps"}, "spec.enabled", "boolean"),
    ],
)
def test_bad_input_names_the_field(spec: dict[str, Any], field: str, words: str) -> None:
    found = causes(doc(**spec))
    assert field in found, found
    assert words in found[field]


def test_every_cause_is_reported_at_once() -> None:
    found = causes(
        doc(
            rollout={"percentage": 300},
            constraints=[{"contextName": "a", "operator": "nope", "values": ["x"]}],
        )
    )
    assert set(found) == {"spec.rollout.percentage", "spec.constraints[0].operator"}


def test_numbers_in_values_are_accepted_as_text() -> None:
    toggle = FeatureToggle.from_json(
        doc(constraints=[{"contextName": "n", "operator": "num_gt", "values": [10]}])
    )
    assert toggle.spec.constraints[0].values == ["10"]
