"""Analysis conditions (`result >= 0.99`, `result.p99 < 250 and result.count > 100`): a tiny,
safe expression language. Pure; nothing is ever passed to Python's `eval`.

Written by hand because the language is small and a dependency (a CEL or expr library) would
bring far more than four operator levels; what it accepts is exactly this grammar:

    expr    := or
    or      := and ("or" and)*             also spelled ||
    and     := not ("and" not)*            also spelled &&
    not     := "not" not | compare         also spelled !
    compare := sum (("=="|"!="|"<"|"<="|">"|">=") sum)?
    sum     := product (("+"|"-") product)*
    product := unary (("*"|"/"|"%") unary)*
    unary   := "-" unary | postfix
    postfix := atom ("." NAME | "[" expr "]")*
    atom    := NUMBER | STRING | true | false | null | NAME | NAME "(" args ")" | "(" expr ")"

Names are the variables given to `evaluate` (the analysis passes `result`); functions are
`len`, `abs`, `min`, `max`, `float`, `int`. `parse` raises `ExpressionError` with the
position; `evaluate` raises it for type errors (comparing a missing value, dividing by 0).

Called by the AnalysisTemplate validation (`shoal.api.analysis`) and the measurement
assessment (`shoal.analysis.run`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


class ExpressionError(ValueError):
    """A condition that does not parse, or cannot be evaluated on the given values."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>==|!=|<=|>=|&&|\|\||[<>+\-*/%().\[\],!])
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and": "&&", "or": "||", "not": "!"}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "abs": abs,
    "min": min,
    "max": max,
    "float": float,
    "int": int,
}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number, string, name, op, end
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(
                f"unexpected character {text[position:].lstrip()[:1]!r} at position {position}"
            )
        kind = match.lastgroup or "op"
        value = match.group(kind)
        if kind == "name" and value in _KEYWORDS:
            kind, value = "op", _KEYWORDS[value]
        tokens.append(Token(kind, value, match.start(kind)))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


Node = tuple[Any, ...]  # ("num", 1.0) ("str", "x") ("var", "result") ("bin", op, a, b) ...


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self, *ops: str) -> Token | None:
        token = self.current
        if token.kind == "op" and token.text in ops:
            self.index += 1
            return token
        return None

    def expect(self, op: str) -> None:
        if self.take(op) is None:
            token = self.current
            found = repr(token.text) if token.kind != "end" else "the end"
            raise ExpressionError(f"expected {op!r} at position {token.position}, found {found}")

    def parse(self) -> Node:
        node = self.binary(0)
        if self.current.kind != "end":
            token = self.current
            raise ExpressionError(f"unexpected {token.text!r} at position {token.position}")
        return node

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("==", "!=", "<", "<=", ">", ">="),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        if level == 2:  # `not` binds looser than comparisons: not a < b == not (a < b)
            if self.take("!") is not None:
                return ("not", self.binary(2))
            left = self.binary(3)
            op = self.take(*self._LEVELS[2])
            return left if op is None else ("bin", op.text, left, self.binary(3))
        left = self.binary(level + 1)
        while (op := self.take(*self._LEVELS[level])) is not None:
            left = ("bin", op.text, left, self.binary(level + 1))
        return left

    def unary(self) -> Node:
        if self.take("-") is not None:
            return ("neg", self.unary())
        node = self.atom()
        while True:
            if self.take(".") is not None:
                token = self.current
                if token.kind != "name":
                    raise ExpressionError(f"expected a field name at position {token.position}")
                self.index += 1
                node = ("get", node, ("str", token.text))
            elif self.take("[") is not None:
                node = ("get", node, self.binary(0))
                self.expect("]")
            else:
                return node

    def atom(self) -> Node:
        token = self.current
        self.index += 1
        if token.kind == "number":
            return ("num", float(token.text))
        if token.kind == "string":
            return ("str", _unquote(token.text))
        if token.kind == "name":
            if token.text in ("true", "false"):
                return ("const", token.text == "true")
            if token.text in ("null", "None"):
                return ("const", None)
            if self.take("(") is not None:
                if token.text not in _FUNCTIONS:
                    known = ", ".join(sorted(_FUNCTIONS))
                    raise ExpressionError(f"unknown function {token.text!r} (known: {known})")
                args: list[Node] = []
                if self.take(")") is None:
                    args.append(self.binary(0))
                    while self.take(",") is not None:
                        args.append(self.binary(0))
                    self.expect(")")
                return ("call", token.text, tuple(args))
            return ("var", token.text)
        if token.kind == "op" and token.text == "(":
            node = self.binary(0)
            self.expect(")")
            return node
        found = repr(token.text) if token.kind != "end" else "the end"
        raise ExpressionError(f"expected a value at position {token.position}, found {found}")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


@lru_cache(maxsize=512)
def parse(text: str) -> Node:
    """The syntax tree of `text`; raises ExpressionError naming the position of the problem."""
    if not text.strip():
        raise ExpressionError("empty expression")
    return _Parser(text).parse()


def variables(node: Node) -> set[str]:
    """The variable names an expression reads (validation: only `result` is known)."""
    kind = node[0]
    if kind == "var":
        return {node[1]}
    out: set[str] = set()
    for part in node[1:]:
        if isinstance(part, tuple):
            if part and isinstance(part[0], str):
                out |= variables(part)
            else:
                for item in part:
                    out |= variables(item)
    return out


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
}


def _eval(node: Node, names: Mapping[str, Any]) -> Any:
    kind = node[0]
    if kind in ("num", "str", "const"):
        return node[1]
    if kind == "var":
        if node[1] not in names:
            raise ExpressionError(f"unknown name {node[1]!r} (known: {', '.join(sorted(names))})")
        return names[node[1]]
    if kind == "not":
        return not _truth(_eval(node[1], names))
    if kind == "neg":
        return -_number(_eval(node[1], names))
    if kind == "get":
        return _get(_eval(node[1], names), _eval(node[2], names))
    if kind == "call":
        args = [_eval(arg, names) for arg in node[2]]
        try:
            return _FUNCTIONS[node[1]](*args)
        except (TypeError, ValueError) as error:
            raise ExpressionError(f"{node[1]}(): {error}") from None
    op = node[1]
    if op == "&&":
        return _truth(_eval(node[2], names)) and _truth(_eval(node[3], names))
    if op == "||":
        return _truth(_eval(node[2], names)) or _truth(_eval(node[3], names))
    left, right = _eval(node[2], names), _eval(node[3], names)
    if op not in ("==", "!=") and (left is None or right is None):
        raise ExpressionError(f"cannot apply {op!r} to a missing value (null)")
    try:
        return _COMPARE[op](left, right)
    except ZeroDivisionError:
        raise ExpressionError("division by zero") from None
    except TypeError:
        raise ExpressionError(
            f"cannot apply {op!r} to {type(left).__name__} and {type(right).__name__}"
        ) from None


def _truth(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpressionError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _get(container: Any, key: Any) -> Any:
    try:
        if isinstance(container, list | tuple | str):
            return container[int(key)]
        if isinstance(container, Mapping):
            return container[key]
    except (KeyError, IndexError, ValueError):
        raise ExpressionError(f"{key!r} is missing") from None
    raise ExpressionError(f"cannot read {key!r} of a {type(container).__name__}")


def evaluate(text: str, names: Mapping[str, Any]) -> Any:
    """The value of `text` with the given variables; ExpressionError on any failure."""
    return _eval(parse(text), names)


def check(text: str, known: frozenset[str] = frozenset({"result"})) -> str:
    """Validate a condition for the API: it parses and reads only known names."""
    unknown = variables(parse(text)) - known
    if unknown:
        raise ExpressionError(
            f"unknown name(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})"
        )
    return text
