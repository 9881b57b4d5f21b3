"""`shoal describe` of an AnalysisRun: its verdict, what it judges (deployment, canary and
stable revision, step), and per metric its provider, conditions, schedule and every
measurement kept.

Called by `describe.render_description`; pure.
"""

from __future__ import annotations

from datetime import datetime

from shoal.api.analysis import AnalysisRun, Metric
from shoal.cli.description import NONE, Description, when
from shoal.cli.durations import format_age
from shoal.cli.output import render_table
from shoal.cli.printers import metric_summary, run_step


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


def describe_analysis_run(out: Description, run: AnalysisRun, now: datetime) -> None:
    args, status = run.spec.arg_values(), run.status
    out.field("Phase", status.phase + (" (terminate requested)" if run.spec.terminate else ""))
    out.field("Message", status.message)
    out.field("Deployment", args.get("deployment"))
    out.field(
        "Revision", f"{args.get('canary-hash') or NONE} (stable {args.get('stable-hash') or NONE})"
    )
    out.field("Step", run_step(run))
    out.field("Started", when(status.started_at, now))
    out.field("Finished", when(status.finished_at, now))
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
