"""Label selector parsing and matching (string and structured forms agree)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.api.selectors import parse_selector

LABELS = {"app": "web", "tier": "front", "env": "prod"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("env in (prod, staging)", True),
        ("env notin (prod)", False),
        ("tier", True),
        ("!tier", False),
        ("!legacy", True),
        ("app=web,env in (dev)", False),
        ("", True),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert parse_selector(text).matches(LABELS) is expected


@pytest.mark.parametrize("text", ["app=(", "a in b", "=x"])
def test_unparseable(text: str) -> None:
    with pytest.raises(ValueError):
        parse_selector(text)


names = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)


@given(
    labels=st.dictionaries(names, names, max_size=4),
    selector=st.dictionaries(names, names, max_size=3),
    excluded=st.lists(names, max_size=2),
)
def test_round_trip_through_the_string_form(
    labels: dict[str, str], selector: dict[str, str], excluded: list[str]
) -> None:
    text = ",".join([f"{k}={v}" for k, v in selector.items()] + [f"!{k}" for k in excluded])
    parsed = parse_selector(text)
    assert parse_selector(parsed.to_query()).matches(labels) == parsed.matches(labels)
