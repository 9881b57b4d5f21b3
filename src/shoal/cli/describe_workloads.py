"""`shoal describe` of the workload kinds: a Deployment (replicas, strategy, its pod template
and the ReplicaSets it owns), a ReplicaSet, a Pod (where and how it runs, its last state), and
the pod spec summary they share (command, ports, env, probes, resources).

Called by `describe.render_description`; pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shoal.api.deployment import Deployment
from shoal.api.pod import Pod, PodTemplateSpec, Probe
from shoal.api.replicaset import ReplicaSet
from shoal.cli.description import Description, conditions, when
from shoal.cli.durations import format_seconds
from shoal.cli.output import render_table
from shoal.cli.printers import pod_status
from shoal.cli.rollout import owned_replicasets, revision_of


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


def describe_deployment(
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
    conditions(out, status.conditions)
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


def describe_replicaset(out: Description, replicaset: ReplicaSet) -> None:
    spec, status = replicaset.spec, replicaset.status
    out.field("Selector", spec.selector.to_query())
    out.field("Replicas", f"{status.replicas} current / {spec.replicas} desired")
    out.field(
        "Pods Status", f"{status.ready_replicas} ready / {status.available_replicas} available"
    )
    _template(out, spec.template)
    conditions(out, status.conditions)


def describe_pod(out: Description, pod: Pod, now: datetime) -> None:
    status = pod.status
    out.field("Node", pod.spec.node_name)
    out.field("Start Time", when(status.start_time, now))
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
        out.field("Started", when(last.started_at, now), 2)
        out.field("Finished", when(last.finished_at, now), 2)
    _pod_spec(out, pod, 0)
    conditions(out, status.conditions)
