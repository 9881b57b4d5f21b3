"""Semantic version precedence (semver.org section 11) used by the semver_* operators."""

from __future__ import annotations

import pytest

from shoal.toggles.semver import parse_semver


def test_precedence_follows_the_specification_example() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2.0.0",
    ]
    keys = [parse_semver(text) for text in ordered]
    assert None not in keys
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert len(set(keys)) == len(keys)


def test_build_metadata_and_leading_v_are_ignored() -> None:
    assert parse_semver("v1.2.3+build.5") == parse_semver("1.2.3")


@pytest.mark.parametrize("text", ["1.2", "1.2.3.4", "01.2.3", "1.2.3-", "one.two.three", ""])
def test_not_semver(text: str) -> None:
    assert parse_semver(text) is None
