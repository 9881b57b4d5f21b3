"""`shoal events [--for KIND/NAME] [-w]`: what happened and why, oldest first.

Events are written by the controllers and agents (`involvedObject` names the object); this
verb lists them like `kubectl events`, filtered to one object with `--for`, and `-w` keeps
printing new ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from shoal.api.event import Event
from shoal.cli.context import (
    AllNamespacesOption,
    NamespaceOption,
    ServerOption,
    connect,
    resolve,
    split_reference,
    target,
)
from shoal.cli.get import no_resources_message, print_objects
from shoal.cli.output import (
    OutputOption,
    TableStream,
    check_format,
    dump_json,
    dump_yaml,
    name_of,
    wire,
)
from shoal.cli.printers import printer_for, table_headers, table_rows
from shoal.cli.watching import watch_objects


def involved_filter(for_object: str | None) -> tuple[str, str] | None:
    """`deployment/web` → ("Deployment", "web"): the kind spelled as events spell it."""
    if for_object is None:
        return None
    kind, name = split_reference(for_object)
    if name is None:
        raise typer.BadParameter(
            "use --for KIND/NAME, e.g. --for deployment/web", param_hint="'--for'"
        )
    cls = resolve(kind)
    return (cls.KIND or kind, name)


def concerns(event: Event, wanted: tuple[str, str] | None) -> bool:
    if wanted is None:
        return True
    involved = event.involved_object
    return involved.kind.lower() == wanted[0].lower() and involved.name == wanted[1]


def events_command(
    *,
    for_object: Annotated[
        str | None, typer.Option("--for", help="Only events about KIND/NAME")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep printing new events")] = False,
    types: Annotated[
        list[str] | None, typer.Option("--types", help="Only these types (Normal, Warning)")
    ] = None,
    output: Annotated[str | None, OutputOption] = None,
    all_namespaces: AllNamespacesOption = False,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """List events, oldest first."""
    check_format(output)
    wanted = involved_filter(for_object)
    allowed = {t.capitalize() for t in types} if types else None
    where = target(server, namespace)
    scope = None if all_namespaces else where.namespace

    def chosen(event: Event) -> bool:
        return concerns(event, wanted) and (allowed is None or event.type in allowed)

    with connect(where) as client:
        listing = client.list(Event, namespace=scope)
        items = [event for event in listing.items if chosen(event)]
        stream: TableStream | None = None
        if not items and output not in ("json", "yaml"):
            typer.echo(no_resources_message(scope), err=True)
        else:
            stream = print_objects(items, output, listing.revision, all_namespaces, False)
        if not watch:
            return
        printer = printer_for(Event.KIND)
        stream = stream or TableStream(table_headers(printer, output == "wide", all_namespaces))
        for change, event in watch_objects(client, Event, scope, listing.revision):
            if change == "DELETED" or not chosen(event):
                continue
            if output == "json":
                typer.echo(dump_json(wire(event)))
            elif output == "yaml":
                typer.echo("---\n" + dump_yaml(wire(event)))
            elif output == "name":
                typer.echo(name_of(event))
            else:
                row = table_rows(
                    printer, [event], datetime.now(UTC), output == "wide", all_namespaces
                )[0]
                if not stream.header_shown:
                    stream.widen([row])
                    typer.echo(stream.header())
                typer.echo(stream.line(row))
