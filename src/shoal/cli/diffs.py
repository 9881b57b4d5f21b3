"""`shoal rollout diffs deployment/NAME`: a DiffReport as tables.

`print_diffs(report_json)` is what the rollout verb calls with the DiffReport it fetched (a
wire-form dict). It prints a summary line, one row per endpoint (compared, differing, diff
rate, noisy, top fields), then the top differing fields with their example pair (values at
the field, the request; `bodies=True` adds the truncated bodies) and the fields learned as
noise. `endpoint_rows` and `field_rows` are the pure parts, tested without a terminal.
Values from services are printed as plain text, never as rich markup (`items[*]` stays).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shoal.api.diffreport import DiffReport, DiffReportStatus
from shoal.cli.durations import format_age

TOP_FIELDS_IN_ROW = 3


def _rate(differing: int, compared: int) -> str:
    return f"{differing / compared * 100:.1f}%" if compared else "-"


def endpoint_rows(status: DiffReportStatus) -> list[list[str]]:
    """ENDPOINT, COMPARED, DIFFERING, DIFF RATE, NOISY, TOP FIELDS; most differing first."""
    endpoints = sorted(status.endpoints, key=lambda e: (-e.differing, e.endpoint))
    return [
        [
            e.endpoint,
            str(e.compared),
            str(e.differing),
            _rate(e.differing, e.compared),
            str(e.noisy),
            ", ".join(f"{f.path} ({f.count})" for f in e.fields[:TOP_FIELDS_IN_ROW]) or "-",
        ]
        for e in endpoints
    ]


def field_rows(status: DiffReportStatus, limit: int = 10) -> list[list[str]]:
    """ENDPOINT, FIELD, SAMPLES, PRIMARY, CANDIDATE, EXAMPLE REQUEST (concrete path if it
    differs from the generalized one)."""
    rows = []
    for endpoint, found in status.top_fields(limit):
        example = found.example
        if example is None:
            rows.append([endpoint, found.path, str(found.count), "", "", ""])
            continue
        request = example.request
        if example.path != found.path:
            request += f"  (at {example.path})"
        rows.append(
            [endpoint, found.path, str(found.count), example.primary, example.candidate, request]
        )
    return rows


def summary(report: DiffReport, now: datetime) -> str:
    status = report.status
    updated = status.last_update_time
    age = f", updated {format_age(updated, now)} ago" if updated else ""
    return (
        f"compared {status.compared}, differing {status.differing} "
        f"({_rate(status.differing, status.compared)}), noisy {status.noisy}, "
        f"errors {status.errors}, candidate errors {status.candidate_errors}, "
        f"dropped {status.dropped}, skipped {status.skipped}{age}"
    )


def _table(headers: list[str], rows: list[list[str]], title: str) -> Table:
    table = Table(*headers, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def print_diffs(
    report_json: dict[str, Any], console: Console | None = None, *, bodies: bool = False
) -> None:
    """Print a DiffReport (wire form) for humans."""
    out = console or Console(highlight=False, soft_wrap=True)
    report = DiffReport.from_json(report_json)
    spec = report.spec
    candidate = f", candidate {spec.candidate_revision}" if spec.candidate_revision else ""
    out.print(Text(f"diffreport/{report.metadata.name}: deployment/{spec.deployment}{candidate}"))
    out.print(Text(summary(report, datetime.now(UTC))))
    status = report.status
    if not status.endpoints:
        out.print("No samples compared yet.")
        return
    headers = ["ENDPOINT", "COMPARED", "DIFFERING", "DIFF RATE", "NOISY", "TOP FIELDS"]
    out.print(_table(headers, endpoint_rows(status), "endpoints"))
    fields = field_rows(status)
    if fields:
        headers = ["ENDPOINT", "FIELD", "SAMPLES", "PRIMARY", "CANDIDATE", "EXAMPLE REQUEST"]
        out.print(_table(headers, fields, "top differences (one example each)"))
    if bodies:
        for endpoint, found in status.top_fields():
            if found.example is not None:
                out.print(Text(f"{endpoint} {found.path}:"))
                out.print(
                    Text(
                        f"  primary   ({found.example.primary_status}): "
                        f"{found.example.primary_body}"
                    )
                )
                out.print(
                    Text(
                        f"  candidate ({found.example.candidate_status}): "
                        f"{found.example.candidate_body}"
                    )
                )
    noise = [
        f"{e.endpoint}: " + ", ".join(f"{n.path} ({n.count})" for n in e.noise)
        for e in status.endpoints
        if e.noise
    ]
    if noise:
        out.print(Text("noise (differs between primaries, not counted):"))
        for line in noise:
            out.print(Text(f"  {line}"))
