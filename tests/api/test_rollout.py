"""Validation of `strategy.canary` / `strategy.blueGreen` with field paths, and the strategy
union of the Deployment."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shoal.api.deployment import Deployment
from shoal.api.errors import causes_from_validation


def deployment(strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"command": ["x"]}},
            "strategy": strategy,
        },
    }


def causes(strategy: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as error:
        Deployment.from_json(deployment(strategy))
    return {c.field: c.message for c in causes_from_validation(error.value)}


def test_a_valid_canary_and_blue_green_keep_their_settings() -> None:
    canary = Deployment.from_json(
        deployment(
            {
                "type": "Canary",
                "canary": {
                    "steps": [
                        {"setWeight": 20},
                        {"pause": {"duration": "30s"}},
                        {
                            "analysis": {
                                "templates": [{"templateName": "rate"}],
                                "args": [{"name": "service", "value": "web"}],
                            }
                        },
                        {"setHeaderRoute": {"match": [{"header": "X-Group", "exact": "beta"}]}},
                        {"setWeight": 100},
                    ],
                    "stickiness": {"header": "X-User-Id"},
                },
            }
        )
    )
    settings = canary.spec.strategy.canary
    assert settings is not None and settings.stickiness is not None
    assert settings.stickiness.header == "x-user-id"
    assert settings.steps[1].pause is not None and settings.steps[1].pause.seconds == 30
    assert [path for path, _ in settings.analysis_refs()] == [
        "spec.strategy.canary.steps[2].analysis"
    ]
    blue = Deployment.from_json(
        deployment({"type": "BlueGreen", "blueGreen": {"previewPort": 9081}})
    )
    assert blue.spec.strategy.blue_green is not None
    assert blue.spec.strategy.blue_green.scale_down_delay_seconds == 30


def test_weight_outside_0_100_names_the_step() -> None:
    found = causes({"type": "Canary", "canary": {"steps": [{"setWeight": 20}, {"setWeight": 120}]}})
    assert "spec.strategy.canary.steps[1].setWeight" in found


def test_steps_after_full_weight_are_rejected_at_the_first_extra_step() -> None:
    found = causes(
        {
            "type": "Canary",
            "canary": {"steps": [{"setWeight": 100}, {"pause": {}}, {"setWeight": 5}]},
        }
    )
    assert "setWeight: 100" in found["spec.strategy.canary.steps[1]"]


def test_a_step_needs_exactly_one_action() -> None:
    found = causes({"type": "Canary", "canary": {"steps": [{"setWeight": 5, "pause": {}}, {}]}})
    assert "got setWeight, pause" in found["spec.strategy.canary.steps[0]"]
    assert "exactly one" in found["spec.strategy.canary.steps[1]"]


def test_other_bad_settings() -> None:
    found = causes(
        {
            "type": "Canary",
            "canary": {
                "stickiness": {"header": "x", "cookie": "y"},
                "steps": [{"pause": {"duration": "soon"}}, {"analysis": {"templates": []}}],
            },
        }
    )
    assert "spec.strategy.canary.stickiness" in found
    assert "spec.strategy.canary.steps[0].pause.duration" in found
    assert "spec.strategy.canary.steps[1].analysis.templates" in found
    found = causes({"type": "BlueGreen", "blueGreen": {"previewPort": 70000}})
    assert "spec.strategy.blueGreen.previewPort" in found
    found = causes({"type": "BlueGreen", "canary": {}})
    assert "canary may only be set when type is Canary" in found["spec.strategy"]
