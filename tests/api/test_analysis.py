"""AnalysisTemplate validation with field paths; args and substitution."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shoal.api.analysis import AnalysisTemplate, arg_references, substitute
from shoal.api.errors import causes_from_validation
from shoal.api.registry import resolve_kind


def template(spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "AnalysisTemplate", "metadata": {"name": "rate"}, "spec": spec}


def metric(**fields: Any) -> dict[str, Any]:
    return {"name": "success-rate", "provider": {"envoy": {"metric": "successRate"}}, **fields}


def causes(spec: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as error:
        AnalysisTemplate.from_json(template(spec))
    return {c.field: c.message for c in causes_from_validation(error.value)}


def test_a_valid_template() -> None:
    t = AnalysisTemplate.from_json(
        template(
            {
                "args": [{"name": "threshold", "value": "0.99"}, {"name": "service"}],
                "metrics": [
                    metric(
                        interval="5s",
                        count=3,
                        failureLimit=1,
                        successCondition="result >= {{args.threshold}}",
                    ),
                    {"name": "smoke", "provider": {"exec": {"command": ["./smoke.sh"]}}},
                    {
                        "name": "probe",
                        "provider": {
                            "web": {"url": "http://x/{{args.service}}", "jsonPath": "data.value"}
                        },
                    },
                ],
            }
        )
    )
    assert t.spec.required_args() == ["service"]
    assert t.spec.metrics[0].interval_seconds == 5
    assert resolve_kind("at") is AnalysisTemplate
    assert resolve_kind("analysisruns").KIND == "AnalysisRun"


def test_bad_metrics_are_named_by_path() -> None:
    found = causes(
        {
            "metrics": [
                metric(successCondition="result >>= 1", interval="0s"),
                {"name": "x", "provider": {}},
                {"name": "Bad_Name", "provider": {"envoy": {"metric": "p42"}}},
                metric(failureLimit=-1),
            ]
        }
    )
    assert "position" in found["spec.metrics[0].successCondition"]
    assert "spec.metrics[0].interval" in found
    assert "exactly one provider" in found["spec.metrics[1].provider"]
    assert "spec.metrics[2].name" in found
    assert "spec.metrics[2].provider.envoy.metric" in found
    assert "spec.metrics[3].failureLimit" in found


def test_conditions_may_only_read_result() -> None:
    found = causes({"metrics": [metric(successCondition="open('/etc/passwd')")]})
    assert "unknown function" in found["spec.metrics[0].successCondition"]
    found = causes({"metrics": [metric(successCondition="secret > 1")]})
    assert "unknown name" in found["spec.metrics[0].successCondition"]


def test_undeclared_args_and_repeated_metrics() -> None:
    found = causes({"metrics": [metric(successCondition="result > {{args.nope}}")]})
    assert "nope" in found["spec"]
    found = causes({"metrics": [metric(), metric()]})
    assert "repeated: success-rate" in found["spec.metrics"]


def test_substitute_reaches_nested_strings_only() -> None:
    doc = {"a": "x{{ args.one }}y", "b": ["{{args.two}}", 3], "c": "{{args.unknown}}"}
    assert substitute(doc, {"one": "1", "two": "2"}) == {
        "a": "x1y",
        "b": ["2", 3],
        "c": "{{args.unknown}}",
    }
    assert arg_references("{{args.a}} {{args.b-c}}") == ["a", "b-c"]
