"""`shoal diff -f FILE`: what `apply` would change, as a unified diff; exits 1 when it would.

The "after" side is the server's own answer to a dry-run apply (defaults filled in, exactly
as it would be stored), so unchanged fields that the manifest leaves to defaults do not show
as differences. Compared: labels, annotations and everything but status and the
system-owned metadata. Exit codes as kubectl's: 0 no differences, 1 differences, 2 errors.
"""

from __future__ import annotations

import difflib
from typing import Any

import typer
from rich.console import Console

from shoal.api.errors import NotFound
from shoal.cli.apply import FilenameOption, RecursiveOption, read_manifests
from shoal.cli.context import NamespaceOption, ServerOption, connect, resolve, target
from shoal.cli.errors import set_error_exit_code
from shoal.cli.manifests import with_namespace
from shoal.cli.output import dump_yaml, wire

DIFF_ERROR_EXIT_CODE = 2
DIFFERENCES_EXIT_CODE = 1


def comparable(document: dict[str, Any] | None) -> dict[str, Any]:
    """The parts of an object a user writes: labels, annotations, spec (not status)."""
    if not document:
        return {}
    metadata = document.get("metadata") or {}
    view: dict[str, Any] = {
        "metadata": {key: metadata[key] for key in ("labels", "annotations") if metadata.get(key)}
    }
    for key, value in document.items():
        if key not in ("apiVersion", "kind", "metadata", "status"):
            view[key] = value
    return view


def unified_diff(ref: str, live: dict[str, Any] | None, applied: dict[str, Any]) -> list[str]:
    """Diff lines of the YAML of both sides; empty when they are the same."""
    before = dump_yaml(comparable(live)).splitlines() if live else []
    after = dump_yaml(comparable(applied)).splitlines()
    return list(
        difflib.unified_diff(
            before, after, fromfile=f"live/{ref}", tofile=f"applied/{ref}", lineterm=""
        )
    )


def print_diff(lines: list[str], console: Console) -> None:
    for line in lines:
        style = None
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        console.print(line, style=style, markup=False, highlight=False)


def diff_command(
    ctx: typer.Context,
    filenames: FilenameOption,
    *,
    recursive: RecursiveOption = False,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Show what `apply -f` would change; exit 0 none, 1 differences, 2 errors."""
    set_error_exit_code(ctx, DIFF_ERROR_EXIT_CODE)
    manifests = read_manifests(ctx, filenames, recursive)
    where = target(server, namespace)
    docs = with_namespace(manifests, where.namespace, where.namespace_explicit)
    console = Console(highlight=False, soft_wrap=True)
    differences = False
    with connect(where) as client:
        results = client.apply_all(docs, dry_run=True)
        for result in results:
            if result.action == "unchanged":
                continue
            cls = resolve(result.kind)
            live = None
            if result.action != "created":
                try:
                    live = wire(client.get(cls, result.name, namespace=result.namespace or ""))
                except NotFound:
                    live = None
            applied = wire(cls.from_json(result.object))
            lines = unified_diff(f"{result.kind.lower()}/{result.name}", live, applied)
            if lines:
                differences = True
                print_diff(lines, console)
    if differences:
        raise typer.Exit(DIFFERENCES_EXIT_CODE)
