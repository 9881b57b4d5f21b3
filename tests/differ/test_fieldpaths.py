"""Field paths: printing, generalizing, parsing ignore patterns, matching subtrees."""

from __future__ import annotations

import pytest

from shoal.differ.fieldpaths import (
    ANY_INDEX,
    WILDCARD,
    IgnoreRules,
    PathSyntaxError,
    format_path,
    generalize,
    parse_pattern,
)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), "$"),
        (("price",), "price"),
        (("items", 3, "price"), "items[3].price"),
        ((0, "id"), "[0].id"),
        (("meta", "content-type"), "meta.content-type"),
        (("meta", "a b"), 'meta["a b"]'),
        (("9lives",), '["9lives"]'),
        (("items", WILDCARD, "price"), "items.*.price"),
        (("items", ANY_INDEX, "price"), "items[*].price"),
        ((ANY_INDEX,), "[*]"),
    ],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


def test_generalize_replaces_indices_and_identifier_keys() -> None:
    assert format_path(generalize(("items", 3, "tags", 0))) == "items[*].tags[*]"
    assert format_path(generalize(("users", "8812", "name"))) == "users.*.name"
    assert format_path(generalize(("byId", "3f2b8c1e-9d4a-4b7e-8f00-0123456789ab"))) == "byId.*"
    assert generalize(("a", "b")) == ("a", "b")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("price", ("price",)),
        ("$.price", ("price",)),
        ("items[*].price", ("items", ANY_INDEX, "price")),
        ("items[2].price", ("items", 2, "price")),
        ("items.*.price", ("items", WILDCARD, "price")),
        ('meta["x y"].z', ("meta", "x y", "z")),
        ("$[0]", (0,)),
        ("a_b.c-d", ("a_b", "c-d")),
    ],
)
def test_parse_pattern(text: str, pattern: tuple[str | int, ...]) -> None:
    assert parse_pattern(text) == pattern


@pytest.mark.parametrize("text", ["", "$", "items[", "a..b", "a[x]", "$..price", "a b", "[1"])
def test_bad_patterns_are_rejected(text: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse_pattern(text)


def test_printed_paths_parse_back() -> None:
    for path in [("items", 3, "price"), ("meta", "a b", 0), ("x",)]:
        assert parse_pattern(format_path(path)) == path


def test_ignore_rules_match_the_field_and_everything_below() -> None:
    rules = IgnoreRules.parse(["meta", "items[*].etag", "list[0]", "users.*.token"])
    assert rules.ignores(("meta",))
    assert rules.ignores(("meta", "generatedAt", 2))
    assert rules.ignores(("items", 7, "etag"))
    assert not rules.ignores(("items", 7, "price"))
    assert not rules.ignores(("items",))
    assert rules.ignores(("list", 0, "x"))
    assert not rules.ignores(("list", 1))
    assert not rules.ignores(("metadata",))
    assert not rules.ignores(("items", "x", "etag"))  # [*] is an index, not a key
    assert rules.ignores(("users", "u1", "token")) and rules.ignores(("users", 0, "token"))


def test_no_rules_ignore_nothing() -> None:
    assert not IgnoreRules(()).ignores(("anything", 1))
