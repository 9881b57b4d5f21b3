"""`shoal apply -f FILE|DIR|-`: create or update the manifests' objects, validated all together.

All documents go to the server's `/api/v1/apply` in one request: the server validates every
one before it stores any, so a bad manifest changes nothing, and its causes come back as
`items[i].field` paths, shown here as the file and document they belong to. `--wait` then
follows the applied Deployments' rollouts.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from shoal.cli.context import NamespaceOption, ServerOption, connect, target
from shoal.cli.durations import parse_duration
from shoal.cli.errors import set_field_locator
from shoal.cli.manifests import Manifest, load_manifests, locate_field, with_namespace
from shoal.cli.progress import wait_for_rollouts

FilenameOption = Annotated[
    list[str],
    typer.Option("--filename", "-f", help="Manifest file, directory, or - for stdin (repeatable)"),
]
RecursiveOption = Annotated[
    bool, typer.Option("--recursive", "-R", help="Also read the directories' subdirectories")
]
TimeoutOption = Annotated[str, typer.Option("--timeout", help="How long to wait, e.g. 60s, 2m, 1h")]


def read_manifests(ctx: typer.Context, filenames: list[str], recursive: bool) -> list[Manifest]:
    """Load the manifests and show API causes by file and document from now on."""
    manifests = load_manifests(filenames, recursive, stdin=typer.get_text_stream("stdin"))
    set_field_locator(ctx, lambda field: locate_field(field, manifests))
    return manifests


def duration_option(text: str, option: str = "--timeout") -> float:
    """A duration option's value in seconds; a usage error when it is not a duration."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=f"'{option}'") from error


def apply_command(
    ctx: typer.Context,
    filenames: FilenameOption,
    *,
    recursive: RecursiveOption = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and show what would happen; store nothing")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Wait until the applied Deployments have rolled out (or, for BlueGreen and "
            "Canary, are paused waiting for `shoal rollout promote`: exit 0)",
        ),
    ] = False,
    timeout: TimeoutOption = "5m",
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Create or update the objects in manifests (validated all together first)."""
    wait_seconds = duration_option(timeout)
    manifests = read_manifests(ctx, filenames, recursive)
    where = target(server, namespace)
    docs = with_namespace(manifests, where.namespace, where.namespace_explicit)
    with connect(where) as client:
        results = client.apply_all(docs, dry_run=dry_run)
    suffix = " (dry run)" if dry_run else ""
    deployments: dict[str, list[str]] = {}
    for result in results:
        typer.echo(f"{result.kind.lower()}/{result.name} {result.action}{suffix}")
        if result.kind == "Deployment":
            deployments.setdefault(result.namespace or where.namespace, []).append(result.name)
    if wait and not dry_run:
        deadline = time.monotonic() + wait_seconds  # one budget for every namespace
        for deployment_namespace, names in deployments.items():
            remaining = max(0.0, deadline - time.monotonic())
            wait_for_rollouts(where.server, deployment_namespace, names, remaining)
