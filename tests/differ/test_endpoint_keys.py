"""Endpoint keys: identifiers collapse to {id}, words and the query string do not matter."""

from __future__ import annotations

import pytest

from shoal.differ.endpoints import endpoint_key, path_template


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/", "/"),
        ("", "/"),
        ("/price", "/price"),
        ("/orders/1234", "/orders/{id}"),
        ("/orders/1234/items/7?expand=1", "/orders/{id}/items/{id}"),
        ("/u/3f2b8c1e-9d4a-4b7e-8f00-0123456789ab", "/u/{id}"),
        ("/commits/9fceb02d0ae598e95dc970b74767f19372d61af8", "/commits/{id}"),
        ("/blobs/a1b2c3d4", "/blobs/{id}"),
        ("/added/facade/deadbeef", "/added/facade/deadbeef"),  # hex letters, no digit: words
        ("/v2/items", "/v2/items"),
        ("/items/abc123", "/items/abc123"),  # too short for an id
    ],
)
def test_path_template(path: str, template: str) -> None:
    assert path_template(path) == template


def test_endpoint_key_upper_cases_the_method() -> None:
    assert endpoint_key("get", "/orders/12?x=1") == "GET /orders/{id}"
