"""The comparator: nested JSON, arrays, type changes, missing fields, headers, other bodies,
ignore patterns and statusOnly."""

from __future__ import annotations

import json
from typing import Any

from shoal.differ.compare import (
    BODY_PATH,
    MISSING,
    STATUS_PATH,
    CompareRules,
    Difference,
    Reply,
    compare,
)

JSON = (("content-type", "application/json"),)


def reply(body: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = JSON) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status, headers, data)


def paths(left: Reply, right: Reply, rules: CompareRules | None = None) -> dict[str, Difference]:
    return {d.path: d for d in compare(left, right, rules or CompareRules())}


def test_equal_answers_have_no_differences() -> None:
    body = {"a": 1, "b": [1, 2, {"c": None}]}
    assert compare(reply(body), reply(body), CompareRules()) == []


def test_key_order_and_whitespace_do_not_matter() -> None:
    left = reply(b'{"a": 1, "b": 2}')
    right = reply(b'{"b":2,"a":1}')
    assert compare(left, right, CompareRules()) == []


def test_nested_leaf_is_named_by_its_path() -> None:
    left = reply({"order": {"items": [{"price": 1.5}, {"price": 2.5}]}})
    right = reply({"order": {"items": [{"price": 1.5}, {"price": 2.6}]}})
    found = paths(left, right)
    assert list(found) == ["order.items[1].price"]
    diff = found["order.items[1].price"]
    assert diff.shape == "order.items[*].price"
    assert (diff.left, diff.right) == ("2.5", "2.6")


def test_missing_and_added_fields() -> None:
    found = paths(reply({"a": 1, "gone": "x"}), reply({"a": 1, "new": [1]}))
    assert found["gone"].left == '"x"' and found["gone"].right == MISSING
    assert found["new"].left == MISSING and found["new"].right == "[1]"


def test_type_change_is_reported_at_the_field_not_below() -> None:
    found = paths(reply({"a": {"b": 1}}), reply({"a": [1]}))
    assert list(found) == ["a"]
    assert paths(reply({"n": 1}), reply({"n": "1"}))["n"].right == '"1"'
    assert list(paths(reply({"f": True}), reply({"f": 1}))) == ["f"]  # true is not 1
    assert list(paths(reply({"f": None}), reply({"f": 0}))) == ["f"]


def test_numbers_compare_by_value() -> None:
    assert compare(reply({"n": 1}), reply({"n": 1.0}), CompareRules()) == []


def test_array_length_is_reported_at_the_array_and_the_common_prefix_compared() -> None:
    found = paths(reply({"xs": [1, 2, 3]}), reply({"xs": [1, 9]}))
    assert set(found) == {"xs", "xs[1]"}
    assert (found["xs"].left, found["xs"].right) == ("array of 3", "array of 2")


def test_root_type_change_is_the_whole_body() -> None:
    assert list(paths(reply([1]), reply({"a": 1}))) == [BODY_PATH]


def test_status_difference() -> None:
    found = paths(reply({"a": 1}), reply({"a": 1}, status=500))
    assert list(found) == [STATUS_PATH]
    assert (found[STATUS_PATH].left, found[STATUS_PATH].right) == ("200", "500")


def test_a_missing_answer_is_a_status_difference_only() -> None:
    found = paths(reply({"a": 1}), Reply(0, error="ConnectionRefusedError"))
    assert list(found) == [STATUS_PATH]
    assert found[STATUS_PATH].right == "error: ConnectionRefusedError"


def test_headers_are_compared_except_ignored_ones() -> None:
    left = reply({}, headers=(*JSON, ("x-version", "v1"), ("date", "Mon"), ("etag", "1")))
    right = reply({}, headers=(*JSON, ("x-version", "v2"), ("date", "Tue"), ("x-new", "y")))
    found = paths(left, right)
    assert set(found) == {":header.x-version", ":header.etag", ":header.x-new"}
    assert found[":header.etag"].right == MISSING
    rules = CompareRules.build(ignore_headers=["X-Version", "etag", "x-new"])
    assert compare(left, right, rules) == []


def test_repeated_headers_are_one_value() -> None:
    left = reply({}, headers=(*JSON, ("vary", "a"), ("vary", "b")))
    right = reply({}, headers=(*JSON, ("vary", "a")))
    assert paths(left, right)[":header.vary"].left == "a, b"


def test_non_json_bodies_compare_exactly() -> None:
    text = (("content-type", "text/plain"),)
    assert (
        compare(reply(b"hello", headers=text), reply(b"hello", headers=text), CompareRules()) == []
    )
    found = paths(reply(b"hello", headers=text), reply(b"hellO", headers=text))
    assert list(found) == [BODY_PATH]
    assert (found[BODY_PATH].left, found[BODY_PATH].right) == ("hello", "hellO")


def test_json_that_does_not_parse_compares_exactly() -> None:
    assert list(paths(reply(b"{broken"), reply(b"{broken!"))) == [BODY_PATH]


def test_json_against_html_is_a_body_difference() -> None:
    html = (("content-type", "text/html"),)
    found = paths(reply({"a": 1}), reply(b"<h1>oops</h1>", headers=html))
    assert set(found) == {BODY_PATH, ":header.content-type"}


def test_ignore_fields_skip_subtrees() -> None:
    left = reply({"requestId": "a", "meta": {"t": 1}, "items": [{"etag": "x", "price": 1}]})
    right = reply({"requestId": "b", "meta": {"t": 2}, "items": [{"etag": "y", "price": 2}]})
    rules = CompareRules.build(ignore_fields=["requestId", "$.meta", "items[*].etag"])
    assert list(paths(left, right, rules)) == ["items[0].price"]


def test_ignored_missing_field_is_not_reported() -> None:
    rules = CompareRules.build(ignore_fields=["trace"])
    assert compare(reply({"a": 1, "trace": 1}), reply({"a": 1}), rules) == []


def test_status_only_ignores_headers_and_body() -> None:
    rules = CompareRules.build(status_only=True)
    left = reply({"a": 1}, headers=(*JSON, ("x-version", "v1")))
    right = reply({"a": 2}, headers=(*JSON, ("x-version", "v2")))
    assert compare(left, right, rules) == []
    assert list(paths(left, reply({"a": 1}, status=404), rules)) == [STATUS_PATH]


def test_long_values_are_truncated() -> None:
    found = paths(reply({"s": "x" * 1000}), reply({"s": "y" * 1000}))
    assert len(found["s"].left) <= 200 and found["s"].left.endswith("…")


def test_deep_documents_do_not_overflow() -> None:
    deep_left: Any = 1
    deep_right: Any = 2
    for _ in range(500):
        deep_left, deep_right = {"a": deep_left}, {"a": deep_right}
    found = compare(reply(deep_left), reply(deep_right), CompareRules())
    assert len(found) == 1 and found[0].path.startswith("a.a.a")
