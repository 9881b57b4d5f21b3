"""The condition language: what it accepts, how it evaluates, and that it never runs Python."""

from __future__ import annotations

import pytest

from shoal.analysis.expressions import ExpressionError, check, evaluate, parse


@pytest.mark.parametrize(
    ("text", "result", "expected"),
    [
        ("result >= 0.99", 0.995, True),
        ("result >= 0.99", 0.7, False),
        ("result < 250 and result > 0", 120.0, True),
        ("result < 250 && result > 0", 0.0, False),
        ("not result < 1", 2, True),
        ("!(result == 'ok')", "ok", False),
        ("result == \"ok\" or result == 'fine'", "fine", True),
        ("result.p99 < 100", {"p99": 80}, True),
        ("result['p99'] * 2 <= 160", {"p99": 80}, True),
        ("result[1] == 3", [1, 3], True),
        ("len(result) == 2", [1, 3], True),
        ("max(result.a, result.b) - 1 == 4", {"a": 2, "b": 5}, True),
        ("-result + 10 == 7", 3, True),
        ("result % 2 == 1 || false", 3, True),
        ("result == null", None, True),
        ("result.exitCode == 0", {"exitCode": 0}, True),
        ("1.5e2 == result", 150, True),
        ("(result + 1) * 2 == 8", 3, True),
    ],
)
def test_evaluate(text: str, result: object, expected: bool) -> None:
    assert evaluate(text, {"result": result}) is expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("result >=", "expected a value"),
        ("result >= 0.9 0.8", "unexpected"),
        ("(result > 1", "expected ')'"),
        ("result $ 2", "unexpected character"),
        ("__import__('os')", "unknown function"),
        ("result.", "field name"),
    ],
)
def test_parse_errors_say_where(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as error:
        parse(text)
    assert fragment in str(error.value)


@pytest.mark.parametrize(
    ("text", "result", "fragment"),
    [
        ("result >= 0.99", None, "missing value"),
        ("result.p99 < 1", {"p50": 2}, "missing"),
        ("result / 0 > 1", 5, "division by zero"),
        ("result > 'a'", 5, "cannot apply"),
        ("other > 1", 5, "unknown name"),
    ],
)
def test_evaluation_errors(text: str, result: object, fragment: str) -> None:
    with pytest.raises(ExpressionError) as error:
        evaluate(text, {"result": result})
    assert fragment in str(error.value)


def test_check_rejects_unknown_names_and_accepts_result() -> None:
    assert check("result > 1") == "result > 1"
    with pytest.raises(ExpressionError, match="os"):
        check("os > 1")


def test_not_binds_looser_than_comparison_and_tighter_than_and() -> None:
    assert evaluate("not 1 > 2 and 3 > 2", {}) is True
    assert evaluate("not (1 < 2 and 3 > 2)", {}) is False
