"""parallelRun settings and the DiffReport kind: defaults, and every bad input rejected with
the field path that is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shoal.api.diffreport import DiffReport, report_name
from shoal.api.errors import causes_from_validation
from shoal.api.parallelrun import ParallelRunSettings, parse_duration_seconds
from shoal.api.registry import resolve_kind

PREFIX = "spec.strategy.parallelRun"


def causes(settings: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        ParallelRunSettings.from_json(settings)
    return {c.field: c.message for c in causes_from_validation(caught.value, PREFIX)}


def test_defaults_mirror_only_safe_methods() -> None:
    settings = ParallelRunSettings.from_json({})
    assert settings.methods == ["GET", "HEAD"]
    assert settings.then == "promote"
    assert settings.duration_seconds == 0.0
    assert 0 < settings.mirror_percent <= 100
    assert settings.compare.status_only is False
    assert settings.to_json()["maxDiffRate"] == settings.max_diff_rate


def test_a_full_block_round_trips() -> None:
    document = {
        "mirrorPercent": 25,
        "methods": ["get", "HEAD", "OPTIONS"],
        "duration": "1h30m",
        "minSamples": 500,
        "maxDiffRate": 0.02,
        "compare": {
            "ignoreHeaders": ["X-Request-Id"],
            "ignoreFields": ["requestId", "items[*].etag", "$.meta"],
            "statusOnly": False,
        },
        "then": "pause",
    }
    settings = ParallelRunSettings.from_json(document)
    assert settings.methods == ["GET", "HEAD", "OPTIONS"]
    assert settings.compare.ignore_headers == ["x-request-id"]
    assert settings.duration_seconds == 5400.0
    assert ParallelRunSettings.from_json(settings.to_json()) == settings


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        ("90", 90.0),
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        (1.5, 1.5),
    ],
)
def test_durations(value: str | float, seconds: float) -> None:
    assert parse_duration_seconds(value) == seconds
    assert ParallelRunSettings.from_json({"duration": value}).duration_seconds == seconds


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"maxDiffRate": 1.5}, "maxDiffRate"),
        ({"maxDiffRate": -0.1}, "maxDiffRate"),
        ({"mirrorPercent": 101}, "mirrorPercent"),
        ({"mirrorPercent": -1}, "mirrorPercent"),
        ({"minSamples": 0}, "minSamples"),
        ({"duration": "soon"}, "duration"),
        ({"duration": -5}, "duration"),
        ({"then": "rollback"}, "then"),
        ({"methods": []}, "methods"),
        ({"methods": ["GET", "get"]}, "methods"),
        ({"methods": ["GET", "BAD METHOD"]}, "methods[1]"),
        ({"compare": {"ignoreCase": True}}, "compare.ignoreCase"),
        ({"compare": {"ignoreFields": ["ok", "items["]}}, "compare.ignoreFields[1]"),
        ({"compare": {"ignoreFields": ["$"]}}, "compare.ignoreFields[0]"),
        ({"compare": {"ignoreHeaders": ["bad header"]}}, "compare.ignoreHeaders[0]"),
        ({"compare": {"statusOnly": "sometimes"}}, "compare.statusOnly"),
        ({"mirrorPercentage": 5}, "mirrorPercentage"),
    ],
)
def test_bad_input_is_rejected_with_its_field_path(settings: dict[str, Any], field: str) -> None:
    found = causes(settings)
    assert f"{PREFIX}.{field}" in found, found


def test_unknown_options_are_called_unknown() -> None:
    assert causes({"compare": {"fuzzy": 1}})[f"{PREFIX}.compare.fuzzy"] == "unknown field"


def test_a_bad_field_path_says_where() -> None:
    message = causes({"compare": {"ignoreFields": ["a..b"]}})[f"{PREFIX}.compare.ignoreFields[0]"]
    assert "character" in message and "items[*].price" in message


def report_doc(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "DiffReport",
        "metadata": {"name": report_name("web", "7d9f8c")},
        "spec": {"deployment": "web", "candidateRevision": "7d9f8c"},
        "status": status,
    }


def test_diff_report_is_registered_and_round_trips() -> None:
    for name in ("DiffReport", "diffreports", "diffs"):
        assert resolve_kind(name) is DiffReport
    report = DiffReport.from_json(
        report_doc(
            compared=10,
            differing=2,
            diffRate=0.2,
            endpoints=[
                {
                    "endpoint": "GET /price",
                    "compared": 10,
                    "differing": 2,
                    "fields": [
                        {
                            "path": "price",
                            "count": 2,
                            "example": {
                                "request": "GET /price",
                                "path": "price",
                                "primary": "19.99",
                                "candidate": "20.0",
                                "primaryStatus": 200,
                                "candidateStatus": 200,
                            },
                        }
                    ],
                    "noise": [{"path": "requestId", "count": 10}],
                }
            ],
        )
    )
    assert report.metadata.name == "web-7d9f8c"
    assert DiffReport.from_json(report.to_json()) == report
    assert [(e, f.path) for e, f in report.status.top_fields()] == [("GET /price", "price")]


def test_report_name_without_a_hash_is_the_deployment() -> None:
    assert report_name("web", None) == "web"


def test_diff_report_rejects_unknown_status_fields() -> None:
    with pytest.raises(ValidationError):
        DiffReport.from_json(report_doc(comparedd=1))
