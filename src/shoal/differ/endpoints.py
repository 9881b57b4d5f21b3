"""Endpoint keys: method + path template, the unit the differ learns noise for and reports on.

`GET /orders/1234?expand=1` and `GET /orders/98?x=2` are one endpoint, `GET /orders/{id}`:
a segment that is all digits, a UUID, or a hexadecimal token of 8+ characters with at least
one digit (so that words made of the letters a-f, such as `added` or `facade`, stay words)
is an identifier. The query string is not part of the template.

Called by `shoal.differ.replay` for every mirrored request; pure.
"""

from __future__ import annotations

import re

ID_PLACEHOLDER = "{id}"
_NUMBER = re.compile(r"[0-9]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"(?=[^/]*[0-9])[0-9a-fA-F]{8,}")


def is_identifier_segment(segment: str) -> bool:
    return bool(_NUMBER.fullmatch(segment) or _UUID.fullmatch(segment) or _HEX.fullmatch(segment))


def path_template(path: str) -> str:
    """`/orders/1234/items/5?x=1` → `/orders/{id}/items/{id}`."""
    bare = path.split("?", 1)[0].split("#", 1)[0] or "/"
    return "/".join(
        ID_PLACEHOLDER if is_identifier_segment(segment) else segment for segment in bare.split("/")
    )


def endpoint_key(method: str, path: str) -> str:
    """`GET /orders/{id}`: what the report's ENDPOINT column shows."""
    return f"{method.upper()} {path_template(path)}"
