"""Durations for the command line, parsed and printed in one place.

`--timeout 60s`, `2m`, `1h30m`, `500ms` or a bare number of seconds are parsed by
`parse_duration`; object ages (`AGE` columns, `LAST SEEN`) are printed by `format_age`
in kubectl's compact style. Used by every CLI verb that waits or shows an age.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_NUMBER = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")


def parse_duration(text: str) -> float:
    """`60s` → 60.0, `2m` → 120.0, `1h30m` → 5400.0, `500ms` → 0.5, `15` → 15.0.

    Raises ValueError with the accepted forms when the text is not a duration.
    """
    value = text.strip()
    if _NUMBER.match(value):
        return float(value)
    total = 0.0
    position = 0
    while position < len(value):
        match = _PART.match(value, position)
        if not match:
            raise ValueError(f"{text!r} is not a duration (examples: 30s, 2m, 1h30m, 500ms, 90)")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not value:
        raise ValueError("empty duration (examples: 30s, 2m, 1h30m, 500ms, 90)")
    return total


def format_seconds(seconds: float) -> str:
    """A span in kubectl's compact form: 45s, 3m20s, 25m, 3h10m, 20h, 2d5h, 30d."""
    seconds = max(0, int(seconds))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    return f"{days}d"


def format_age(since: datetime | None, now: datetime | None = None) -> str:
    """How long ago `since` was, or `<unknown>` when the object has no timestamp."""
    if since is None:
        return "<unknown>"
    now = now or datetime.now(UTC)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return format_seconds((now - since).total_seconds())
