"""`shoal delete KIND NAME... | KIND/NAME... | -f FILE`: remove objects.

An object with finalizers (a pod whose process is still running) is only marked for
deletion; the owner of the finalizer finishes the job. `--force` removes it at once.
"""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.api.errors import NotFound
from shoal.api.meta import Resource
from shoal.cli.apply import RecursiveOption, read_manifests
from shoal.cli.context import (
    NamespaceOption,
    ServerOption,
    connect,
    resolve,
    split_reference,
    target,
)
from shoal.cli.errors import CommandError, error_console
from shoal.cli.get import SelectorOption
from shoal.client import Client


def parse_targets(kind: str | None, names: list[str]) -> list[tuple[str, str]]:
    """(kind, name) pairs from `KIND NAME...` or `KIND/NAME...`."""
    if kind is None:
        return []
    if "/" in kind:
        pairs = []
        for ref in [kind, *names]:
            if "/" not in ref:
                raise typer.BadParameter("give either KIND NAME... or KIND/NAME..., not both")
            ref_kind, ref_name = split_reference(ref)
            pairs.append((ref_kind, ref_name or ""))
        return pairs
    if any("/" in name for name in names):
        raise typer.BadParameter("give either KIND NAME... or KIND/NAME..., not both")
    return [(kind, name) for name in names]


def _delete_one(
    client: Client,
    cls: type[Resource],
    name: str,
    namespace: str,
    *,
    force: bool,
    ignore_not_found: bool,
) -> bool:
    """Delete and report; False when it did not exist (and that is not being ignored)."""
    try:
        client.delete(cls, name, namespace=namespace, force=force)
    except NotFound:
        if ignore_not_found:
            return True
        error_console().print(
            f'error: {cls.KIND.lower() or "object"} "{name}" not found', markup=False
        )
        return False
    typer.echo(f"{(cls.KIND or cls.PLURAL).lower()}/{name} deleted{' (forced)' if force else ''}")
    return True


def delete_command(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Argument(help="Kind, or KIND/NAME")] = None,
    names: Annotated[list[str] | None, typer.Argument(help="Names (or more KIND/NAME)")] = None,
    *,
    filenames: Annotated[
        list[str] | None,
        typer.Option("--filename", "-f", help="Delete the objects of these manifests"),
    ] = None,
    recursive: RecursiveOption = False,
    selector: SelectorOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Remove at once, skipping finalizers (graceful stop)")
    ] = False,
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="A missing object is not an error")
    ] = False,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Delete objects by name, by label selector, or those of manifests."""
    where = target(server, namespace)
    wanted: list[tuple[type[Resource], str, str]] = []
    if filenames:
        for manifest in read_manifests(ctx, filenames, recursive):
            cls = resolve(manifest.kind)
            wanted.append((cls, manifest.name, manifest.namespace or where.namespace))
    pairs = parse_targets(kind, names or [])
    wanted.extend((resolve(k), n, where.namespace) for k, n in pairs)
    with connect(where) as client:
        if kind is not None and not names and "/" not in kind:
            if selector is None:
                raise typer.BadParameter("give NAMEs, -l SELECTOR or -f FILE")
            cls = resolve(kind)
            scope = where.namespace if cls.NAMESPACED else None
            for obj in client.list(cls, namespace=scope, selector=selector).items:
                wanted.append((cls, obj.metadata.name, obj.metadata.namespace or where.namespace))
        if not wanted:
            if selector is not None:
                typer.echo("No resources found.", err=True)
                return
            raise typer.BadParameter("give KIND NAME, KIND/NAME or -f FILE")
        missing = [
            name
            for cls, name, object_namespace in wanted
            if not _delete_one(
                client, cls, name, object_namespace, force=force, ignore_not_found=ignore_not_found
            )
        ]
    if missing:
        raise CommandError(f"{len(missing)} of {len(wanted)} objects not found")
