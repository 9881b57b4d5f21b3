"""Durations for --timeout and the AGE columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shoal.cli.durations import format_age, format_seconds, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60),
        ("2m", 120),
        ("1h", 3600),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("15", 15),
        ("1.5s", 1.5),
        ("1d", 86400),
        (" 2m ", 120),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "10x", "m5", "-5s", "1h x"])
def test_parse_duration_rejects_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match="30s"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (200, "3m20s"),
        (180, "3m"),
        (1500, "25m"),
        (3 * 3600 + 600, "3h10m"),
        (20 * 3600, "20h"),
        (2 * 86400 + 5 * 3600, "2d5h"),
        (30 * 86400, "30d"),
        (-5, "0s"),
    ],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_format_age_of_naive_and_missing_timestamps() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert format_age(now - timedelta(seconds=30), now) == "30s"
    assert format_age(datetime(2026, 1, 1, 11, 0), now) == "60m"
    assert format_age(None, now) == "<unknown>"
