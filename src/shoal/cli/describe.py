"""`shoal describe KIND NAME`: one object for humans — metadata, spec summary, status,
conditions, owner, and the Events that name it (`involvedObject`).

`render_description` writes the parts every object has (metadata, events) and hands the rest
to the renderer of its kind: `describe_workloads` (Deployment, ReplicaSet, Pod),
`describe_infra` (Node, Service), `describe_analysis` (AnalysisRun); any other kind shows its
spec and status as YAML. All of it is pure (text from objects); the command only fetches the
object and its events. Registered as a command by `shoal.cli.main`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from shoal.api.analysis import AnalysisRun
from shoal.api.deployment import Deployment
from shoal.api.event import Event
from shoal.api.meta import Resource
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet
from shoal.api.service import Service
from shoal.cli.context import (
    NamespaceOption,
    ServerOption,
    connect,
    resolve,
    split_reference,
    target,
)
from shoal.cli.describe_analysis import describe_analysis_run
from shoal.cli.describe_infra import describe_node, describe_service
from shoal.cli.describe_workloads import describe_deployment, describe_pod, describe_replicaset
from shoal.cli.description import NONE, Description, when
from shoal.cli.durations import format_age
from shoal.cli.output import dump_yaml, render_table, wire
from shoal.cli.printers import event_time


def _generic(out: Description, obj: Resource) -> None:
    document = wire(obj)
    for section in ("spec", "status"):
        value: Any = document.get(section)
        if value:
            out.heading(section.capitalize())
            out.block(dump_yaml(value) if isinstance(value, dict) else str(value), 2)


def events_about(obj: Resource, events: Sequence[Event]) -> list[Event]:
    """The events whose involvedObject is `obj` (by kind and name; by uid when both have one)."""
    chosen = []
    for event in events:
        involved = event.involved_object
        if involved.kind != obj.kind or involved.name != obj.metadata.name:
            continue
        if obj.metadata.namespace and involved.namespace not in (None, obj.metadata.namespace):
            continue
        if involved.uid and obj.metadata.uid and involved.uid != obj.metadata.uid:
            continue
        chosen.append(event)
    return sorted(chosen, key=lambda e: event_time(e) or datetime.min.replace(tzinfo=UTC))


def render_description(
    obj: Resource,
    events: Sequence[Event],
    now: datetime,
    replicasets: Sequence[ReplicaSet] = (),
) -> str:
    """The whole `describe` text of an object, its events (and a Deployment's ReplicaSets)."""
    out = Description()
    meta = obj.metadata
    out.field("Name", meta.name)
    if obj.NAMESPACED or meta.namespace:
        out.field("Namespace", meta.namespace)
    out.field("Kind", obj.kind)
    out.mapping("Labels", meta.labels)
    out.mapping("Annotations", meta.annotations)
    out.field("Created", when(meta.creation_timestamp, now))
    owner = meta.controller_ref() or (meta.owner_references[0] if meta.owner_references else None)
    if owner is not None:
        out.field("Controlled By", f"{owner.kind}/{owner.name}")
    if meta.deletion_timestamp is not None:
        out.field("Deleting Since", when(meta.deletion_timestamp, now))
    if meta.finalizers:
        out.field("Finalizers", ", ".join(meta.finalizers))
    if isinstance(obj, Deployment):
        describe_deployment(out, obj, replicasets)
    elif isinstance(obj, ReplicaSet):
        describe_replicaset(out, obj)
    elif isinstance(obj, Pod):
        describe_pod(out, obj, now)
    elif isinstance(obj, Service):
        describe_service(out, obj)
    elif isinstance(obj, Node):
        describe_node(out, obj, now)
    elif isinstance(obj, AnalysisRun):
        describe_analysis_run(out, obj, now)
    elif not isinstance(obj, Event):
        _generic(out, obj)
    about = events_about(obj, events)
    if not about:
        out.field("Events", NONE)
    else:
        out.heading("Events")
        rows = [
            [
                e.type,
                e.reason,
                format_age(event_time(e), now),
                e.source.component if e.source else "",
                e.message,
            ]
            for e in about
        ]
        out.block(render_table(["Type", "Reason", "Age", "From", "Message"], rows), 2)
    return out.text()


def describe_command(
    kind: Annotated[str, typer.Argument(help="Kind (deploy, po, rs, svc, no, ...) or KIND/NAME")],
    name: Annotated[str | None, typer.Argument(help="The object's name")] = None,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Show one object in detail, with the events that concern it."""
    kind, name = split_reference(kind, name)
    if name is None:
        raise typer.BadParameter("describe needs a NAME (KIND NAME or KIND/NAME)")
    cls = resolve(kind)
    where = target(server, namespace)
    with connect(where) as client:
        obj = client.get(cls, name, namespace=where.namespace)
        events_namespace = obj.metadata.namespace if cls.NAMESPACED else None
        events = client.list(Event, namespace=events_namespace).items
        replicasets: list[ReplicaSet] = []
        if isinstance(obj, Deployment):
            replicasets = client.list(ReplicaSet, namespace=events_namespace).items
    typer.echo(render_description(obj, events, datetime.now(UTC), replicasets))
