"""Table columns per kind for `shoal get` (and `shoal events`), kubectl-like.

Each printer turns one object into its cells; `wide` adds columns (`-o wide`). Kinds without
a printer (feature kinds such as FeatureToggle) get NAME and AGE. AnalysisRuns show their
verdict, Deployment, judged revision, step and a summary per metric (`success-rate 3/3 ok`);
DiffReports their tallies. Pure functions: `now` is a
parameter so that ages are testable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shoal.api.analysis import AnalysisRun, AnalysisTemplate, Metric, MetricResult
from shoal.api.deployment import REVISION_ANNOTATION, Deployment
from shoal.api.diffreport import DiffReport
from shoal.api.event import Event
from shoal.api.meta import Resource, find_condition
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet
from shoal.api.selectors import LabelSelector
from shoal.api.service import Service
from shoal.cli.durations import format_age, format_seconds

NONE = "<none>"
Cells = list[str]


@dataclass(frozen=True, slots=True)
class Printer:
    """Headers, extra `-o wide` headers, and the function giving both sets of cells."""

    headers: tuple[str, ...]
    wide_headers: tuple[str, ...]
    cells: Callable[[Any, datetime], tuple[Cells, Cells]]
    sort_key: Callable[[Any], Any] | None = None


def _selector(selector: LabelSelector) -> str:
    return selector.to_query() or NONE


def pod_status(pod: Pod) -> str:
    """Terminating while being deleted, the agent's reason while not ready, else the phase."""
    if pod.metadata.deletion_timestamp is not None:
        return "Terminating"
    if pod.status.reason and not pod.status.ready:
        return pod.status.reason
    return pod.status.phase


def _pod_cells(pod: Pod, now: datetime) -> tuple[Cells, Cells]:
    ports = pod.status.host_ports
    port = (
        str(pod.status.host_port)
        if pod.status.host_port
        else ",".join(f"{name}:{number}" for name, number in sorted(ports.items())) or NONE
    )
    return (
        [
            pod.metadata.name,
            "1/1" if pod.status.ready else "0/1",
            pod_status(pod),
            str(pod.status.restart_count),
            format_age(pod.metadata.creation_timestamp, now),
        ],
        [pod.spec.node_name or NONE, str(pod.status.pid) if pod.status.pid else NONE, port],
    )


def _deployment_cells(deployment: Deployment, now: datetime) -> tuple[Cells, Cells]:
    spec, status = deployment.spec, deployment.status
    return (
        [
            deployment.metadata.name,
            f"{status.ready_replicas}/{spec.replicas}",
            str(status.updated_replicas),
            str(status.available_replicas),
            format_age(deployment.metadata.creation_timestamp, now),
        ],
        [spec.strategy.type, _selector(spec.selector)],
    )


def _replicaset_cells(replicaset: ReplicaSet, now: datetime) -> tuple[Cells, Cells]:
    spec, status = replicaset.spec, replicaset.status
    return (
        [
            replicaset.metadata.name,
            str(spec.replicas),
            str(status.replicas),
            str(status.ready_replicas),
            format_age(replicaset.metadata.creation_timestamp, now),
        ],
        [replicaset.metadata.annotations.get(REVISION_ANNOTATION, NONE), _selector(spec.selector)],
    )


def _service_cells(service: Service, now: datetime) -> tuple[Cells, Cells]:
    endpoints = service.status.endpoints
    ready = sum(1 for endpoint in endpoints if endpoint.ready)
    target = service.spec.target_port
    return (
        [
            service.metadata.name,
            str(service.spec.port),
            NONE if target is None else str(target),
            f"{ready}/{len(endpoints)}",
            format_age(service.metadata.creation_timestamp, now),
        ],
        [",".join(f"{k}={v}" for k, v in sorted(service.spec.selector.items()))],
    )


def node_status(node: Node) -> str:
    ready = find_condition(node.status.conditions, "Ready")
    status = {"True": "Ready", "False": "NotReady"}.get(ready.status if ready else "", "Unknown")
    return f"{status},SchedulingDisabled" if node.spec.unschedulable else status


def _node_cells(node: Node, now: datetime) -> tuple[Cells, Cells]:
    capacity = node.status.capacity
    return (
        [
            node.metadata.name,
            node_status(node),
            format_age(node.metadata.creation_timestamp, now),
            node.status.agent_version or NONE,
        ],
        [node.status.address, capacity.cpu, capacity.memory, str(capacity.pods)],
    )


def event_time(event: Event) -> datetime | None:
    return event.last_timestamp or event.first_timestamp or event.metadata.creation_timestamp


def _event_sort_key(event: Event) -> float:
    moment = event_time(event)
    return moment.timestamp() if moment else 0.0


def _event_cells(event: Event, now: datetime) -> tuple[Cells, Cells]:
    involved = event.involved_object
    return (
        [
            format_age(event_time(event), now),
            event.type,
            event.reason,
            f"{involved.kind.lower()}/{involved.name}",
            event.message,
        ],
        [event.source.component if event.source else NONE, str(event.count)],
    )


_METRIC_WORDS = {
    "Running": "running",
    "Successful": "ok",
    "Failed": "failed",
    "Inconclusive": "inconclusive",
    "Error": "error",
}


def metric_summary(metric: Metric, result: MetricResult | None) -> str:
    """`success-rate 3/3 ok`: measurements taken of those planned, and the metric's verdict
    (with the failed, inconclusive and error counts when there are any)."""
    if result is None:
        return f"{metric.name} 0/{metric.count} pending"
    bad = [
        f"{count} {word}"
        for count, word in (
            (result.failed, "failed"),
            (result.inconclusive, "inconclusive"),
            (result.error, "errors"),
        )
        if count
    ]
    word = _METRIC_WORDS.get(result.phase, result.phase.lower())
    detail = f" ({', '.join(bad)})" if bad and result.phase == "Running" else ""
    return f"{metric.name} {result.count}/{metric.count} {word}{detail}"


def _short(text: str, limit: int) -> str:
    """A cell of at most `limit` characters (a web metric's value may be a whole document)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_step(run: AnalysisRun) -> str:
    """Which rollout step the run judges, from its name `<deployment>-<hash>-<step>[-<try>]`
    (canary: the step's number; blue-green: pre or post promotion)."""
    args = run.spec.arg_values()
    prefix = f"{args.get('deployment', '')}-{args.get('canary-hash', '')}-"
    if not run.metadata.name.startswith(prefix):
        return NONE
    step, _, attempt = run.metadata.name.removeprefix(prefix).partition("-")
    step = {"pre": "pre-promotion", "post": "post-promotion"}.get(step, step)
    return f"{step} (retry {attempt})" if attempt else step


def _analysisrun_cells(run: AnalysisRun, now: datetime) -> tuple[Cells, Cells]:
    args, status = run.spec.arg_values(), run.status
    metrics = ", ".join(metric_summary(m, status.result_of(m.name)) for m in run.spec.metrics)
    took = NONE
    if status.started_at is not None:
        took = format_seconds(((status.finished_at or now) - status.started_at).total_seconds())
    last = [
        f"{r.name}={_short(r.measurements[-1].value or r.measurements[-1].message or '', 40)}"
        for r in status.metric_results
        if r.measurements
    ]
    return (
        [
            run.metadata.name,
            status.phase,
            args.get("deployment", NONE),
            args.get("canary-hash") or NONE,
            run_step(run),
            metrics,
            format_age(run.metadata.creation_timestamp, now),
        ],
        [took, "; ".join(last) or NONE, _short(status.message or NONE, 120)],
    )


def _template_cells(template: AnalysisTemplate, now: datetime) -> tuple[Cells, Cells]:
    def provider(metric: Metric) -> str:
        given = metric.provider
        if given.envoy is not None:
            return f"envoy {given.envoy.metric}"
        return "web" if given.web is not None else "exec"

    metrics = ", ".join(f"{m.name} ({provider(m)})" for m in template.spec.metrics)
    conditions = "; ".join(
        f"{m.name}: {m.success_condition or '-'} / {m.failure_condition or '-'}"
        for m in template.spec.metrics
    )
    return (
        [template.metadata.name, metrics, format_age(template.metadata.creation_timestamp, now)],
        [conditions],
    )


def _diffreport_cells(report: DiffReport, now: datetime) -> tuple[Cells, Cells]:
    spec, status = report.spec, report.status
    top = status.top_fields(1)
    return (
        [
            report.metadata.name,
            spec.deployment,
            spec.candidate_revision or NONE,
            str(status.compared),
            str(status.differing),
            f"{100 * status.diff_rate:.2f}%",
            format_age(report.metadata.creation_timestamp, now),
        ],
        [
            spec.primary_revision or NONE,
            str(status.noisy),
            str(status.errors + status.candidate_errors),
            str(status.dropped),
            f"{top[0][0]} {top[0][1].path} ({top[0][1].count})" if top else NONE,
        ],
    )


def _generic_cells(obj: Resource, now: datetime) -> tuple[Cells, Cells]:
    return [obj.metadata.name, format_age(obj.metadata.creation_timestamp, now)], []


PRINTERS: dict[str, Printer] = {
    "Pod": Printer(
        ("NAME", "READY", "STATUS", "RESTARTS", "AGE"), ("NODE", "PID", "PORT"), _pod_cells
    ),
    "Deployment": Printer(
        ("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"),
        ("STRATEGY", "SELECTOR"),
        _deployment_cells,
    ),
    "ReplicaSet": Printer(
        ("NAME", "DESIRED", "CURRENT", "READY", "AGE"), ("REVISION", "SELECTOR"), _replicaset_cells
    ),
    "Service": Printer(
        ("NAME", "PORT", "TARGET-PORT", "ENDPOINTS", "AGE"), ("SELECTOR",), _service_cells
    ),
    "Node": Printer(
        ("NAME", "STATUS", "AGE", "VERSION"), ("ADDRESS", "CPU", "MEMORY", "PODS"), _node_cells
    ),
    "Event": Printer(
        ("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"),
        ("SOURCE", "COUNT"),
        _event_cells,
        _event_sort_key,
    ),
    "AnalysisRun": Printer(
        ("NAME", "PHASE", "DEPLOYMENT", "REVISION", "STEP", "METRICS", "AGE"),
        ("DURATION", "LAST", "MESSAGE"),
        _analysisrun_cells,
    ),
    "AnalysisTemplate": Printer(("NAME", "METRICS", "AGE"), ("CONDITIONS",), _template_cells),
    "DiffReport": Printer(
        ("NAME", "DEPLOYMENT", "CANDIDATE", "COMPARED", "DIFFERING", "DIFF-RATE", "AGE"),
        ("PRIMARY", "NOISY", "ERRORS", "DROPPED", "TOP-FIELD"),
        _diffreport_cells,
    ),
}
GENERIC = Printer(("NAME", "AGE"), (), _generic_cells)


def printer_for(kind: str) -> Printer:
    return PRINTERS.get(kind, GENERIC)


def table_headers(printer: Printer, wide: bool, all_namespaces: bool) -> list[str]:
    headers = list(printer.headers) + (list(printer.wide_headers) if wide else [])
    return ["NAMESPACE", *headers] if all_namespaces else headers


def table_row(
    printer: Printer, obj: Resource, now: datetime, wide: bool, all_namespaces: bool
) -> Cells:
    cells, wide_cells = printer.cells(obj, now)
    row = cells + (wide_cells if wide else [])
    return [obj.metadata.namespace or "", *row] if all_namespaces else row


def table_rows(
    printer: Printer,
    objects: Sequence[Resource],
    now: datetime,
    wide: bool = False,
    all_namespaces: bool = False,
) -> list[Cells]:
    """Rows in the printer's order (events by time), else by namespace and name."""
    if printer.sort_key is not None:
        ordered = sorted(objects, key=printer.sort_key)
    else:
        ordered = sorted(objects, key=lambda o: (o.metadata.namespace or "", o.metadata.name))
    return [table_row(printer, obj, now, wide, all_namespaces) for obj in ordered]
