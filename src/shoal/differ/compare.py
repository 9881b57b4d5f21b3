"""The comparator: where two HTTP answers to the same request differ, by field path.

`compare(left, right, rules)` returns one `Difference` per differing field:

- `:status` the status code (an upstream that gave no answer has status 0 and its error text);
- `:header.<name>` each header present in either answer, names lower-cased, except the
  ignored ones (`rules.ignore_headers` plus hop-by-hop and per-response headers such as
  `date`; `content-length` too, since the body comparison already covers it);
- the body: when both answers say JSON (`content-type` contains `json`) and parse, the two
  documents are walked together and each differing leaf, missing key or type change is named
  by its path (`items[3].price`, `requestId`; array lengths at the array's own path). Other
  bodies (and JSON that does not parse) are compared byte for byte, a difference named `$`.

Numbers compare by value (`1` equals `1.0`: JSON has one number type); `true` is not `1`.
Fields matched by `rules.ignore` (see `fieldpaths`) are skipped with everything below them.
`statusOnly` compares the status alone.

Pure; called by `shoal.differ.aggregate` twice per sample (primary vs second primary for noise,
primary vs candidate for differences). Byte-equal bodies are not parsed, which keeps a
deterministic service cheap to compare.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from shoal.differ.fieldpaths import IgnoreRules, Path, format_path, generalize

STATUS_PATH = ":status"
HEADER_PREFIX = ":header."
BODY_PATH = "$"
MISSING = "<missing>"
VALUE_LIMIT = 200
MAX_DEPTH = 64  # deeper JSON is compared as one value at that depth

# Headers that say nothing about the answer itself: hop-by-hop (RFC 9110 7.6.1) and
# per-response ones. `content-length` follows the body, which is compared on its own.
DEFAULT_IGNORED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "date",
        "server",
        "content-length",
        "age",
        "x-envoy-upstream-service-time",
    }
)

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """One upstream's answer. `status` 0 means no answer; `error` then says why."""

    status: int
    headers: Headers = ()
    body: bytes = b""
    error: str | None = None

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None

    def header_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self.headers:
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out


@dataclass(frozen=True, slots=True)
class Difference:
    """`path` names one field (`items[3].price`), `shape` its generalized form
    (`items[*].price`) under which noise is learned and counts are kept."""

    path: str
    shape: str
    left: str
    right: str


@dataclass(frozen=True)
class CompareRules:
    ignore_headers: frozenset[str] = DEFAULT_IGNORED_HEADERS
    ignore: IgnoreRules = field(default_factory=lambda: IgnoreRules(()))
    status_only: bool = False

    @classmethod
    def build(
        cls,
        ignore_headers: Iterable[str] = (),
        ignore_fields: Iterable[str] = (),
        status_only: bool = False,
    ) -> CompareRules:
        """Rules from the user's `compare` settings; the default ignored headers always apply."""
        headers = DEFAULT_IGNORED_HEADERS | {name.strip().lower() for name in ignore_headers}
        return cls(frozenset(headers), IgnoreRules.parse(ignore_fields), status_only)


def value_text(value: Any, limit: int = VALUE_LIMIT) -> str:
    """A value as JSON text, cut to `limit` characters (examples in reports stay small)."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # nested deeper than orjson writes (255 levels)
        text = "<nested too deep to show>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def body_excerpt(body: bytes, limit: int) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return text + "…" if len(body) > limit else text


def _status_text(reply: Reply) -> str:
    return f"error: {reply.error}" if reply.status == 0 else str(reply.status)


def _is_json(reply: Reply) -> bool:
    content_type = reply.header("content-type")
    return content_type is not None and "json" in content_type.lower()


def compare(left: Reply, right: Reply, rules: CompareRules) -> list[Difference]:
    """Every difference between two answers to one request (empty: they agree)."""
    out: list[Difference] = []
    if left.status != right.status:
        out.append(Difference(STATUS_PATH, STATUS_PATH, _status_text(left), _status_text(right)))
    if rules.status_only or left.status == 0 or right.status == 0:
        return out
    _compare_headers(left, right, rules.ignore_headers, out)
    _compare_bodies(left, right, rules.ignore, out)
    return out


def _compare_headers(
    left: Reply, right: Reply, ignored: frozenset[str], out: list[Difference]
) -> None:
    if left.headers == right.headers:
        return
    mine, theirs = left.header_map(), right.header_map()
    for name in sorted(mine.keys() | theirs.keys()):
        if name in ignored:
            continue
        a, b = mine.get(name), theirs.get(name)
        if a != b:
            path = HEADER_PREFIX + name
            out.append(Difference(path, path, a or MISSING, b or MISSING))


def _compare_bodies(left: Reply, right: Reply, ignore: IgnoreRules, out: list[Difference]) -> None:
    if left.body == right.body:
        return
    if _is_json(left) and _is_json(right):
        try:
            a, b = orjson.loads(left.body), orjson.loads(right.body)
        except orjson.JSONDecodeError:
            pass
        else:
            walker = _Walker(ignore, out)
            walker.walk(a, b, (), ignore.start())
            return
    excerpt_left, excerpt_right = (
        body_excerpt(left.body, VALUE_LIMIT),
        body_excerpt(right.body, VALUE_LIMIT),
    )
    out.append(Difference(BODY_PATH, BODY_PATH, excerpt_left, excerpt_right))


def _kind(value: Any) -> str:
    """JSON type: numbers are one kind, bool is its own (Python's True == 1 is not JSON's)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


class _Walker:
    def __init__(self, ignore: IgnoreRules, out: list[Difference]) -> None:
        self.ignore = ignore
        self.out = out

    def report(self, path: Path, left: str, right: str) -> None:
        self.out.append(Difference(format_path(path), format_path(generalize(path)), left, right))

    def walk(self, a: Any, b: Any, path: Path, state: tuple[tuple[int, int], ...]) -> None:
        kind = _kind(a)
        if kind != _kind(b):
            self.report(path, value_text(a), value_text(b))
        elif kind == "object" and len(path) < MAX_DEPTH:
            for key in sorted(a.keys() | b.keys()):
                below = self.ignore.advance(state, key) if state else state
                if below is None:
                    continue
                if key not in a or key not in b:
                    left = value_text(a[key]) if key in a else MISSING
                    right = value_text(b[key]) if key in b else MISSING
                    self.report((*path, key), left, right)
                else:
                    self.walk(a[key], b[key], (*path, key), below)
        elif kind == "array" and len(path) < MAX_DEPTH:
            if len(a) != len(b):
                self.report(path, f"array of {len(a)}", f"array of {len(b)}")
            for index in range(min(len(a), len(b))):
                below = self.ignore.advance(state, index) if state else state
                if below is not None:
                    self.walk(a[index], b[index], (*path, index), below)
        elif a != b:
            self.report(path, value_text(a), value_text(b))
