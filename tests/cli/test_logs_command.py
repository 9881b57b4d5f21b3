"""`shoal logs`: the request it makes and how it tells a missing endpoint from a missing pod.

The server side is an in-memory httpx transport (the HTTP seam), not a mock of shoal code.
"""

from __future__ import annotations

import io

import httpx
import pytest

from shoal.api.errors import NotFound
from shoal.cli.context import Target
from shoal.cli.errors import CommandError
from shoal.cli.logs import copy_logs, log_params, pod_name

WHERE = Target(server="http://shoal.test", namespace="shop", namespace_explicit=True)


def serve(handler: httpx.MockTransport) -> httpx.Client:
    return httpx.Client(base_url=WHERE.server, transport=handler)


def status(code: int, message: str) -> httpx.Response:
    return httpx.Response(
        code, json={"kind": "Status", "code": code, "reason": "NotFound", "message": message}
    )


def test_copies_the_log_and_sends_the_parameters() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="line 1\nline 2\n")

    out = io.StringIO()
    copy_logs(
        serve(httpx.MockTransport(handler)),
        WHERE,
        "web-1",
        log_params(follow=True, previous=False, tail=5),
        out,
    )
    assert out.getvalue() == "line 1\nline 2\n"
    assert seen[0].url.path == "/api/v1/namespaces/shop/pods/web-1/log"
    assert dict(seen[0].url.params) == {"follow": "true", "previous": "false", "tailLines": "5"}


def test_a_server_without_the_endpoint_is_named() -> None:
    transport = httpx.MockTransport(lambda _request: status(404, "Not Found"))
    with pytest.raises(CommandError, match="does not serve pod logs"):
        copy_logs(serve(transport), WHERE, "web-1", log_params(False, False, None), io.StringIO())


def test_other_not_found_answers_stay_api_errors() -> None:
    transport = httpx.MockTransport(lambda _request: status(404, "no previous run of web-1"))
    with pytest.raises(NotFound, match="no previous run"):
        copy_logs(serve(transport), WHERE, "web-1", log_params(False, True, None), io.StringIO())


def test_pod_name_forms() -> None:
    assert pod_name("web-1") == "web-1"
    assert pod_name("pod/web-1") == "web-1"
    assert pod_name("po/web-1") == "web-1"
    with pytest.raises(Exception, match="logs are read from pods"):
        pod_name("deployment/web")
