"""`shoal describe KIND NAME`: one object for humans — metadata, spec summary, status,
conditions, owner, and the Events that name it (`involvedObject`). An AnalysisRun shows its
verdict, what it judges, and per metric its condition and every measurement kept.

`describe` renders to text with pure functions (`render_description`); the command only
fetches the object and its events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from shoal.api.analysis import AnalysisRun, Metric
from shoal.api.deployment import Deployment
from shoal.api.event import Event
from shoal.api.meta import Condition, Resource
from shoal.api.node import Node
from shoal.api.pod import Pod, PodTemplateSpec, Probe
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
from shoal.cli.durations import format_age, format_seconds
from shoal.cli.output import dump_yaml, render_table, wire
from shoal.cli.printers import event_time, metric_summary, node_status, pod_status, run_step
from shoal.cli.rollout import owned_replicasets, revision_of

LABEL_WIDTH = 24
NONE = "<none>"


class Description:
    """Lines of `Label:  value`, with nested blocks indented by two spaces."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def field(self, label: str, value: object, indent: int = 0) -> None:
        pad = " " * indent
        text = NONE if value is None or value == "" else str(value)
        self.lines.append(f"{pad}{label + ':':<{max(LABEL_WIDTH - indent, len(label) + 2)}}{text}")

    def mapping(self, label: str, values: dict[str, str], indent: int = 0) -> None:
        """`Labels:  app=web` with further pairs aligned on the following lines."""
        pairs = [f"{key}={value}" for key, value in sorted(values.items())]
        self.field(label, pairs[0] if pairs else NONE, indent)
        for pair in pairs[1:]:
            self.lines.append(" " * max(LABEL_WIDTH, indent + len(label) + 2) + pair)

    def heading(self, label: str, indent: int = 0) -> None:
        self.lines.append(f"{' ' * indent}{label}:")

    def block(self, text: str, indent: int) -> None:
        self.lines.extend(f"{' ' * indent}{line}" for line in text.splitlines())

    def text(self) -> str:
        return "\n".join(self.lines)


def _when(moment: datetime | None, now: datetime) -> str | None:
    if moment is None:
        return None
    return f"{moment.isoformat()} ({format_age(moment, now)} ago)"


def probe_summary(probe: Probe) -> str:
    """`http-get http://127.0.0.1:http/healthz delay=0s timeout=1s period=10s #success=1 ...`."""
    if probe.http_get is not None:
        action = f"http-get http://{probe.http_get.host}:{probe.http_get.port}{probe.http_get.path}"
    elif probe.tcp_socket is not None:
        action = f"tcp-socket {probe.tcp_socket.host}:{probe.tcp_socket.port}"
    elif probe.exec is not None:
        action = "exec " + " ".join(probe.exec.command)
    else:
        action = "<no handler>"
    return (
        f"{action} delay={format_seconds(probe.initial_delay_seconds)} "
        f"timeout={format_seconds(probe.timeout_seconds)} "
        f"period={format_seconds(probe.period_seconds)} "
        f"#success={probe.success_threshold} #failure={probe.failure_threshold}"
    )


def _pod_spec(out: Description, template: PodTemplateSpec | Pod, indent: int) -> None:
    spec = template.spec
    out.field("Command", " ".join(spec.command), indent)
    if spec.args:
        out.field("Args", " ".join(spec.args), indent)
    if spec.working_dir:
        out.field("Working Dir", spec.working_dir, indent)
    ports = [f"{p.name or '<unnamed>'}:{p.container_port or 'allocated'}" for p in spec.ports]
    out.field("Ports", ", ".join(ports) or None, indent)
    out.mapping("Environment", {e.name: e.value for e in spec.env}, indent)
    for label, probe in (
        ("Startup", spec.startup_probe),
        ("Readiness", spec.readiness_probe),
        ("Liveness", spec.liveness_probe),
    ):
        if probe is not None:
            out.field(label, probe_summary(probe), indent)
    requests, limits = spec.resources.requests, spec.resources.limits
    if requests.cpu or requests.memory:
        out.field("Requests", f"cpu={requests.cpu or '-'} memory={requests.memory or '-'}", indent)
    if limits.cpu or limits.memory or limits.pids:
        out.field(
            "Limits",
            f"cpu={limits.cpu or '-'} memory={limits.memory or '-'} pids={limits.pids or '-'}",
            indent,
        )
    out.field("Grace Period", format_seconds(spec.termination_grace_period_seconds), indent)
    out.field("Restart Policy", spec.restart_policy, indent)


def _template(out: Description, template: PodTemplateSpec) -> None:
    out.heading("Pod Template")
    out.mapping("Labels", template.metadata.labels, 2)
    if template.metadata.annotations:
        out.mapping("Annotations", template.metadata.annotations, 2)
    _pod_spec(out, template, 2)


def _conditions(out: Description, conditions: Sequence[Condition]) -> None:
    if not conditions:
        return
    out.heading("Conditions")
    rows = [[c.type, c.status, c.reason or "", c.message or ""] for c in conditions]
    out.block(render_table(["Type", "Status", "Reason", "Message"], rows), 2)


def _deployment(
    out: Description, deployment: Deployment, replicasets: Sequence[ReplicaSet]
) -> None:
    spec, status = deployment.spec, deployment.status
    out.field("Selector", spec.selector.to_query())
    out.field(
        "Replicas",
        f"{spec.replicas} desired | {status.updated_replicas} updated | "
        f"{status.replicas} total | {status.available_replicas} available | "
        f"{status.unavailable_replicas} unavailable",
    )
    out.field("StrategyType", spec.strategy.type)
    rolling = spec.strategy.rolling_update
    if rolling is not None:
        out.field(
            "RollingUpdateStrategy",
            f"{rolling.max_unavailable} max unavailable, {rolling.max_surge} max surge",
        )
    out.field("MinReadySeconds", format_seconds(spec.min_ready_seconds))
    out.field("ProgressDeadline", format_seconds(spec.progress_deadline_seconds))
    out.field("Revision", status.current_revision)
    if spec.paused:
        out.field("Paused", "true")
    _template(out, spec.template)
    _conditions(out, status.conditions)
    owned = owned_replicasets(deployment, list(replicasets))
    if owned:
        out.heading("ReplicaSets")
        rows = [
            [
                rs.metadata.name,
                str(revision_of(rs)),
                str(rs.spec.replicas),
                str(rs.status.ready_replicas),
                str(rs.status.available_replicas),
            ]
            for rs in reversed(owned)
        ]
        out.block(render_table(["Name", "Revision", "Desired", "Ready", "Available"], rows), 2)


def _replicaset(out: Description, replicaset: ReplicaSet) -> None:
    spec, status = replicaset.spec, replicaset.status
    out.field("Selector", spec.selector.to_query())
    out.field("Replicas", f"{status.replicas} current / {spec.replicas} desired")
    out.field(
        "Pods Status", f"{status.ready_replicas} ready / {status.available_replicas} available"
    )
    _template(out, spec.template)
    _conditions(out, status.conditions)


def _pod(out: Description, pod: Pod, now: datetime) -> None:
    status = pod.status
    out.field("Node", pod.spec.node_name)
    out.field("Start Time", _when(status.start_time, now))
    out.field("Status", pod_status(pod))
    if status.message:
        out.field("Message", status.message)
    out.field("Ready", "True" if status.ready else "False")
    out.field("PID", status.pid)
    ports = dict(status.host_ports)
    if status.host_port and not ports:
        ports = {"port": status.host_port}
    out.mapping("Host Ports", {k: str(v) for k, v in ports.items()})
    out.field("Restart Count", status.restart_count)
    last = status.last_state
    if last is not None:
        out.heading("Last State")
        out.field("Reason", last.reason, 2)
        out.field("Exit Code", last.exit_code, 2)
        if last.signal is not None:
            out.field("Signal", last.signal, 2)
        out.field("Started", _when(last.started_at, now), 2)
        out.field("Finished", _when(last.finished_at, now), 2)
    _pod_spec(out, pod, 0)
    _conditions(out, status.conditions)


def _service(out: Description, service: Service) -> None:
    out.mapping("Selector", service.spec.selector)
    out.field("Port", service.spec.port)
    out.field("TargetPort", service.spec.target_port)
    out.field("Timeout", format_seconds(service.spec.timeout_seconds))
    endpoints = [
        f"{e.ip}:{e.port} ({e.pod}{'' if e.ready else ', not ready'})"
        for e in service.status.endpoints
    ]
    out.field("Endpoints", ", ".join(endpoints) or None)


def _node(out: Description, node: Node, now: datetime) -> None:
    status = node.status
    out.field("Status", node_status(node))
    out.field("Address", status.address)
    out.field("Unschedulable", str(node.spec.unschedulable).lower())
    out.field("Agent Version", status.agent_version)
    out.field("Last Heartbeat", _when(status.last_heartbeat_time, now))
    out.field("Envoy Admin Port", status.envoy_admin_port)
    out.field("Features", ", ".join(status.features) or None)
    for label, resources in (("Capacity", status.capacity), ("Allocatable", status.allocatable)):
        out.heading(label)
        out.field("cpu", resources.cpu, 2)
        out.field("memory", resources.memory, 2)
        out.field("pods", resources.pods, 2)
    _conditions(out, status.conditions)


def _provider(metric: Metric) -> str:
    given = metric.provider
    if given.envoy is not None:
        envoy = given.envoy
        service = f", service {envoy.service}" if envoy.service else ""
        return f"envoy {envoy.metric} of the {envoy.revision} version{service}"
    if given.web is not None:
        return f"web GET {given.web.url}" + (
            f" -> {given.web.json_path}" if given.web.json_path else ""
        )
    assert given.exec is not None
    return "exec " + " ".join(given.exec.command)


def _analysis_run(out: Description, run: AnalysisRun, now: datetime) -> None:
    args, status = run.spec.arg_values(), run.status
    out.field("Phase", status.phase + (" (terminate requested)" if run.spec.terminate else ""))
    out.field("Message", status.message)
    out.field("Deployment", args.get("deployment"))
    out.field(
        "Revision", f"{args.get('canary-hash') or NONE} (stable {args.get('stable-hash') or NONE})"
    )
    out.field("Step", run_step(run))
    out.field("Started", _when(status.started_at, now))
    out.field("Finished", _when(status.finished_at, now))
    out.mapping(
        "Args",
        {k: v for k, v in args.items() if k not in ("deployment", "canary-hash", "stable-hash")},
    )
    out.heading("Metrics")
    for metric in run.spec.metrics:
        result = status.result_of(metric.name)
        out.field(metric.name, metric_summary(metric, result).removeprefix(metric.name + " "), 2)
        out.field("Provider", _provider(metric), 4)
        success, failure = metric.success_condition, metric.failure_condition
        out.field("Conditions", f"success: {success or '-'}; failure: {failure or '-'}", 4)
        out.field(
            "Schedule",
            f"every {metric.interval} x{metric.count}, failureLimit {metric.failure_limit}, "
            f"inconclusiveLimit {metric.inconclusive_limit}",
            4,
        )
        if result is not None and result.message:
            out.field("Result", result.message, 4)
        if result is not None and result.measurements:
            rows = [
                [format_age(m.started_at, now), m.phase, m.value or "", m.message or ""]
                for m in result.measurements
            ]
            out.block(render_table(["Taken", "Phase", "Value", "Message"], rows), 4)


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
    out.field("Created", _when(meta.creation_timestamp, now))
    owner = meta.controller_ref() or (meta.owner_references[0] if meta.owner_references else None)
    if owner is not None:
        out.field("Controlled By", f"{owner.kind}/{owner.name}")
    if meta.deletion_timestamp is not None:
        out.field("Deleting Since", _when(meta.deletion_timestamp, now))
    if meta.finalizers:
        out.field("Finalizers", ", ".join(meta.finalizers))
    if isinstance(obj, Deployment):
        _deployment(out, obj, replicasets)
    elif isinstance(obj, ReplicaSet):
        _replicaset(out, obj)
    elif isinstance(obj, Pod):
        _pod(out, obj, now)
    elif isinstance(obj, Service):
        _service(out, obj)
    elif isinstance(obj, Node):
        _node(out, obj, now)
    elif isinstance(obj, AnalysisRun):
        _analysis_run(out, obj, now)
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
