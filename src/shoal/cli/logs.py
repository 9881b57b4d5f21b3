"""`shoal logs POD [-f] [--previous] [--tail N]`: a pod's output, as the server has it.

Logs are text, streamed with `follow`, which the typed JSON client does not speak; this is
the one place the CLI talks HTTP itself, through httpx and the client's own error decoding
(`shoal.client.raise_for_status`), so API errors still arrive as typed errors. The endpoint
is `GET /api/v1/namespaces/{ns}/pods/{name}/log?follow=&previous=&tailLines=`; a server
that has no such route yet is told apart from a missing pod by checking the pod first.
"""

from __future__ import annotations

import sys
from typing import Annotated, TextIO

import httpx
import typer

from shoal.api.errors import NotFound
from shoal.api.pod import Pod
from shoal.cli.context import (
    NamespaceOption,
    ServerOption,
    Target,
    connect,
    split_reference,
    target,
)
from shoal.cli.errors import CommandError
from shoal.client import raise_for_status

# The unknown-route answer of the API server (a Status whose message is the HTTP phrase).
ROUTE_NOT_FOUND_MESSAGE = "Not Found"
CONNECT_TIMEOUT_SECONDS = 10.0


def log_path(namespace: str, pod: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{pod}/log"


def log_params(follow: bool, previous: bool, tail: int | None) -> dict[str, str]:
    params = {"follow": str(follow).lower(), "previous": str(previous).lower()}
    if tail is not None:
        params["tailLines"] = str(tail)
    return params


def pod_name(ref: str) -> str:
    """`web-abc` or `pod/web-abc` → `web-abc`."""
    if "/" not in ref:
        return ref
    kind, name = split_reference(ref)
    if kind.lower() not in ("pod", "pods", "po") or not name:
        raise typer.BadParameter(f"logs are read from pods: give POD or pod/NAME (got {ref!r})")
    return name


def copy_logs(
    http: httpx.Client, where: Target, pod: str, params: dict[str, str], out: TextIO
) -> None:
    """Copy the pod's log stream to `out` as it arrives; API errors raised typed."""
    with http.stream("GET", log_path(where.namespace, pod), params=params) as response:
        if response.status_code >= 400:
            response.read()
            try:
                raise_for_status(response)
            except NotFound as error:
                if error.message == ROUTE_NOT_FOUND_MESSAGE:
                    raise CommandError(
                        f"the server at {where.server} does not serve pod logs "
                        "(no /log endpoint; upgrade the server)"
                    ) from error
                raise
        for chunk in response.iter_text():
            out.write(chunk)
            out.flush()


def stream_logs(where: Target, pod: str, params: dict[str, str]) -> None:
    """Print the pod's log to stdout."""
    # A followed log may be silent for a long time: no read timeout then.
    read_timeout = None if params.get("follow") == "true" else CONNECT_TIMEOUT_SECONDS
    timeout = httpx.Timeout(CONNECT_TIMEOUT_SECONDS, read=read_timeout)
    with httpx.Client(base_url=where.server, timeout=timeout) as http:
        copy_logs(http, where, pod, params, sys.stdout)


def logs_command(
    pod: Annotated[str, typer.Argument(help="The pod (NAME or pod/NAME)")],
    *,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing output")] = False,
    previous: Annotated[
        bool, typer.Option("--previous", "-p", help="The previous run's output (before a restart)")
    ] = False,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines")] = None,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Print a pod's output (stdout and stderr)."""
    name = pod_name(pod)
    where = target(server, namespace)
    with connect(where) as client:
        client.get(Pod, name, namespace=where.namespace)  # a missing pod: a clear NotFound
    stream_logs(where, name, log_params(follow, previous, tail))
