"""`shoal get KIND [NAME]`: tables like kubectl's, or JSON/YAML/names, optionally watched.

`-o json` of a list prints `{"apiVersion": "shoal/v1", "kind": "List", "items": [...]}`;
`-w` keeps printing changes until Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer

from shoal.api.errors import NotFound
from shoal.api.meta import Resource
from shoal.cli.context import (
    AllNamespacesOption,
    NamespaceOption,
    ServerOption,
    connect,
    is_generic,
    known_kinds,
    resolve,
    split_reference,
    target,
)
from shoal.cli.errors import CommandError
from shoal.cli.output import (
    OutputOption,
    TableStream,
    check_format,
    dump_json,
    dump_yaml,
    list_document,
    name_of,
    render_document,
    wire,
)
from shoal.cli.printers import printer_for, table_headers, table_rows
from shoal.cli.watching import watch_objects
from shoal.client import Client

SelectorOption = Annotated[
    str | None,
    typer.Option("--selector", "-l", help="Label selector, e.g. app=web,tier!=db"),
]


def no_resources_message(namespace: str | None) -> str:
    return f"No resources found in {namespace} namespace." if namespace else "No resources found."


def print_objects(
    objects: Sequence[Resource],
    output: str | None,
    revision: int | None,
    all_namespaces: bool,
    single: bool,
) -> TableStream | None:
    """Print objects in the chosen format; a table returns its stream for `-w` to continue."""
    if output in ("json", "yaml"):
        document = wire(objects[0]) if single else list_document(objects, revision)
        typer.echo(render_document(document, output))
        return None
    if output == "name":
        for obj in objects:
            typer.echo(name_of(obj))
        return None
    kind = objects[0].kind if objects else ""
    printer = printer_for(kind)
    stream = TableStream(table_headers(printer, output == "wide", all_namespaces))
    rows = table_rows(printer, objects, datetime.now(UTC), output == "wide", all_namespaces)
    if rows:
        stream.widen(rows)
        typer.echo(stream.header())
        for row in rows:
            typer.echo(stream.line(row))
    return stream


def follow_changes(
    *,
    client: Client,
    cls: type[Resource],
    namespace: str | None,
    since: int,
    selector: str | None,
    name: str | None,
    output: str | None,
    all_namespaces: bool,
    stream: TableStream | None,
) -> None:
    """Print every change after `since` until interrupted."""
    for _change, obj in watch_objects(client, cls, namespace, since, selector):
        if name is not None and obj.metadata.name != name:
            continue
        if output == "json":
            typer.echo(dump_json(wire(obj)))
        elif output == "yaml":
            typer.echo("---\n" + dump_yaml(wire(obj)))
        elif output == "name":
            typer.echo(name_of(obj))
        else:
            printer = printer_for(obj.kind)
            if stream is None:
                stream = TableStream(table_headers(printer, output == "wide", all_namespaces))
            row = table_rows(printer, [obj], datetime.now(UTC), output == "wide", all_namespaces)
            if not stream.header_shown:
                stream.widen(row)
                typer.echo(stream.header())
            typer.echo(stream.line(row[0]))


def list_kind(
    client: Client, cls: type[Resource], kind: str, scope: str | None, selector: str | None
) -> tuple[list[Resource], int]:
    """Objects of one kind and the list's revision; an unknown kind is a clear error."""
    try:
        listing = client.list(cls, namespace=scope, selector=selector)
    except NotFound as error:
        if is_generic(cls):
            raise CommandError(
                f"the server does not serve kind {kind!r} (known: {known_kinds()})"
            ) from error
        raise
    return list(listing.items), listing.revision


def get_many(
    client: Client,
    kinds: list[str],
    namespace: str,
    *,
    selector: str | None,
    output: str | None,
    all_namespaces: bool,
) -> None:
    """`get deploy,rs,po`: one table per kind (blank line between), or one List."""
    found: list[tuple[list[Resource], bool]] = []
    for kind in kinds:
        cls = resolve(kind)
        scope = namespace if cls.NAMESPACED and not all_namespaces else None
        objects, _revision = list_kind(client, cls, kind, scope, selector)
        found.append((objects, all_namespaces and cls.NAMESPACED))
    if output in ("json", "yaml"):
        everything = [obj for objects, _ in found for obj in objects]
        typer.echo(render_document(list_document(everything, None), output))
        return
    printed = False
    for objects, with_namespace_column in found:
        if not objects:
            continue
        if printed and output != "name":
            typer.echo("")
        print_objects(objects, output, None, with_namespace_column, False)
        printed = True
    if not printed:
        typer.echo(no_resources_message(None if all_namespaces else namespace), err=True)


def get_command(
    kind: Annotated[
        str,
        typer.Argument(help="Kind (pods, deploy, rs, svc, nodes, events, ...), KIND/NAME or a,b"),
    ],
    name: Annotated[str | None, typer.Argument(help="Only this object")] = None,
    *,
    selector: SelectorOption = None,
    output: Annotated[str | None, OutputOption] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep printing changes")] = False,
    all_namespaces: AllNamespacesOption = False,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Show objects of a kind, in a table or as JSON/YAML."""
    check_format(output)
    kind, name = split_reference(kind, name)
    where = target(server, namespace)
    kinds = [part for part in kind.split(",") if part]
    if len(kinds) > 1:
        if name is not None or watch:
            raise typer.BadParameter("several kinds (a,b) take neither a NAME nor --watch")
        with connect(where) as client:
            get_many(
                client,
                kinds,
                where.namespace,
                selector=selector,
                output=output,
                all_namespaces=all_namespaces,
            )
        return
    cls = resolve(kind)
    all_namespaces = all_namespaces and cls.NAMESPACED and name is None
    scope = where.namespace if cls.NAMESPACED and not all_namespaces else None
    with connect(where) as client:
        if name is not None:
            obj = client.get(cls, name, namespace=where.namespace)
            objects: list[Resource] = [obj]
            revision = int(obj.metadata.resource_version or 0)
        else:
            objects, revision = list_kind(client, cls, kind, scope, selector)
        if not objects and output not in ("json", "yaml"):
            typer.echo(no_resources_message(scope), err=True)
            stream = None
        else:
            stream = print_objects(objects, output, revision, all_namespaces, name is not None)
        if watch:
            follow_changes(
                client=client,
                cls=cls,
                namespace=scope,
                since=revision,
                selector=selector,
                name=name,
                output=output,
                all_namespaces=all_namespaces,
                stream=stream,
            )
