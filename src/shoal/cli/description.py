"""The text `shoal describe` prints, as a builder: `Label:  value` lines aligned on one column,
nested blocks indented by two spaces, and the pieces every kind shares (a moment with its age,
a Conditions table).

Used by `describe` (metadata and events) and by the per-kind renderers `describe_workloads`,
`describe_analysis` and `describe_infra`; all pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shoal.api.meta import Condition
from shoal.cli.durations import format_age
from shoal.cli.output import render_table

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


def when(moment: datetime | None, now: datetime) -> str | None:
    """`2026-01-01T11:55:00+00:00 (5m ago)`; None (shown as <none>) when there is no moment."""
    if moment is None:
        return None
    return f"{moment.isoformat()} ({format_age(moment, now)} ago)"


def conditions(out: Description, given: Sequence[Condition]) -> None:
    """A Conditions table; nothing at all when there are none."""
    if not given:
        return
    out.heading("Conditions")
    rows = [[c.type, c.status, c.reason or "", c.message or ""] for c in given]
    out.block(render_table(["Type", "Status", "Reason", "Message"], rows), 2)
