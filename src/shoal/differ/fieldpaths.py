"""Field paths of a JSON body: how the comparator names a difference and how users name the
fields to ignore (`compare.ignoreFields`).

A path is a tuple of segments: `str` for an object key, `int` for an array index. It is printed
the way a reader writes it: `items[3].price`, `requestId`, `meta["content-type"]`; the body
itself (the root) is `$`. `generalize` gives a path's shape: every index becomes `[*]` and
every key that is an identifier (digits, a UUID, a long hex token, as in endpoint templates)
becomes `*`, so `items[3].price` → `items[*].price` and `users.8812.name` → `users.*.name`.
Noise is learned and differences are counted by shape: a field that is random in one element
is random in all of them, and maps keyed by ids do not grow the tallies without bound.

Patterns (what `ignoreFields` accepts) use the same syntax, optionally starting with `$.`, plus
wildcards: `[*]` matches any index, `*` any key or index. A pattern ignores the field it names
and everything below it (`meta` ignores `meta.generatedAt`).

Called by `shoal.api.parallelrun` (validation of ignoreFields) and `shoal.differ.compare`.
Pure and dependency-free on purpose: the API layer imports it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

from shoal.differ.endpoints import is_identifier_segment

Segment = str | int
Path = tuple[Segment, ...]
ROOT = "$"
WILDCARD = "*"  # any key (or index); printed `*`
ANY_INDEX = -1  # any array index; printed `[*]` (real indices are never negative)
# Printed as `.key` when it looks like an identifier; anything else is quoted: `["a b"]`.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_DOT_KEY = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_-]*|\*)")
_INDEX = re.compile(r"\[(\d+|\*)\]")
_QUOTED = re.compile(r'\[("(?:[^"\\]|\\.)*")\]')


def format_path(path: Sequence[Segment]) -> str:
    """`("items", 3, "price")` → `items[3].price`; the empty path is `$`."""
    out: list[str] = []
    for segment in path:
        if segment == ANY_INDEX:
            out.append("[*]")
        elif isinstance(segment, int):
            out.append(f"[{segment}]")
        elif segment == WILDCARD or _IDENTIFIER.fullmatch(segment):
            out.append(f".{segment}" if out else segment)
        else:
            out.append(f"[{json.dumps(segment)}]")
    return "".join(out) or ROOT


def generalize(path: Sequence[Segment]) -> Path:
    """The shape of a path: indices become ANY_INDEX, identifier-like keys WILDCARD."""
    return tuple(
        ANY_INDEX
        if isinstance(segment, int)
        else WILDCARD
        if is_identifier_segment(segment)
        else segment
        for segment in path
    )


class PathSyntaxError(ValueError):
    pass


def parse_pattern(text: str) -> Path:
    """`$.items[*].price` → `("items", "*", "price")`; raises PathSyntaxError with the spot.

    Indices stay ints (`items[0]` ignores only the first element); `[*]` becomes ANY_INDEX,
    `*` WILDCARD.
    """
    rest = text.strip()
    if rest.startswith(ROOT):
        rest = rest[1:]
        if rest.startswith(".") and not rest.startswith(".."):
            rest = rest[1:]
    if not rest:
        raise PathSyntaxError(f"{text!r} names the whole body; use statusOnly instead")
    segments: list[Segment] = []
    position = 0
    while position < len(rest):
        for pattern in (_INDEX, _QUOTED, _DOT_KEY):
            match = pattern.match(rest, position)
            if match is None or (pattern is _DOT_KEY and position > 0 and rest[position] != "."):
                continue
            value = match.group(1)
            if pattern is _INDEX:
                segments.append(ANY_INDEX if value == WILDCARD else int(value))
            elif pattern is _QUOTED:
                segments.append(str(json.loads(value)))
            else:
                segments.append(value)
            position = match.end()
            break
        else:
            raise PathSyntaxError(
                f"{text!r} is not a field path at character {position + 1} "
                '(examples: price, items[*].price, meta["content-type"], $.user.id)'
            )
    return tuple(segments)


def segment_matches(pattern: Segment, segment: Segment) -> bool:
    if pattern == ANY_INDEX:
        return isinstance(segment, int)
    return pattern in (WILDCARD, segment)


class IgnoreRules:
    """Compiled ignore patterns, walked alongside the comparison: `advance` keeps, per
    pattern, how many segments have matched so far, so a check costs O(patterns) per node."""

    def __init__(self, patterns: Iterable[Path]) -> None:
        self.patterns = tuple(p for p in patterns if p)

    @classmethod
    def parse(cls, texts: Iterable[str]) -> IgnoreRules:
        return cls(parse_pattern(text) for text in texts)

    def start(self) -> tuple[tuple[int, int], ...]:
        """The state at the root: (pattern number, segments matched) for every pattern."""
        return tuple((number, 0) for number in range(len(self.patterns)))

    def advance(
        self, state: tuple[tuple[int, int], ...], segment: Segment
    ) -> tuple[tuple[int, int], ...] | None:
        """The state below `segment`, or None when a pattern is complete (ignore the subtree)."""
        out: list[tuple[int, int]] = []
        for number, matched in state:
            pattern = self.patterns[number]
            if segment_matches(pattern[matched], segment):
                if matched + 1 == len(pattern):
                    return None
                out.append((number, matched + 1))
        return tuple(out)

    def ignores(self, path: Sequence[Segment]) -> bool:
        """Whether `path` (or one of its ancestors) matches a pattern."""
        state: tuple[tuple[int, int], ...] | None = self.start()
        for segment in path:
            assert state is not None
            state = self.advance(state, segment)
            if state is None:
                return True
        return False
