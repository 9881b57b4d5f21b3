"""Output formats of `get`, `events` and friends: aligned tables, JSON, YAML and names.

Tables are aligned by hand rather than with rich's Table: rich fits a table to the terminal
width and wraps or truncates cells, while `shoal get` output must stay one object per line
and never cut, so that it can be piped to grep and awk the way kubectl's can.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import typer
import yaml

from shoal.api.meta import API_VERSION, Resource

FORMATS = ("wide", "json", "yaml", "name")
COLUMN_GAP = "   "

OutputOption = typer.Option(
    "--output", "-o", help="Output format: wide, json, yaml or name", show_default=False
)


def check_format(output: str | None) -> str | None:
    """Validate `-o`, raising a usage error that lists the accepted formats."""
    if output is not None and output not in FORMATS:
        raise typer.BadParameter(
            f"unknown output format {output!r} (use one of: {', '.join(FORMATS)})",
            param_hint="'--output' / '-o'",
        )
    return output


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, separated by three spaces, no trailing blanks."""
    widths = [len(header) for header in headers]
    for row in rows:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[column]) for column, cell in enumerate(row)]
        lines.append(COLUMN_GAP.join(cells).rstrip())
    return "\n".join(lines)


def wire(obj: Resource | dict[str, Any]) -> dict[str, Any]:
    """The wire form of an object, whichever form it is held in."""
    return obj.to_json() if isinstance(obj, Resource) else obj


def list_document(
    items: Sequence[Resource | dict[str, Any]], revision: int | None
) -> dict[str, Any]:
    """What `get -o json|yaml` prints for a list: `{"kind": "List", "items": [...]}`."""
    metadata = {"resourceVersion": str(revision)} if revision is not None else {}
    return {
        "apiVersion": API_VERSION,
        "kind": "List",
        "metadata": metadata,
        "items": [wire(item) for item in items],
    }


def dump_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False).rstrip("\n")


def name_of(obj: Resource | dict[str, Any]) -> str:
    """`pod/web-7d4f9-x2k`: the `-o name` form, also used in `apply` and `delete` messages."""
    document = wire(obj)
    name = (document.get("metadata") or {}).get("name", "")
    return f"{str(document.get('kind', '')).lower()}/{name}"


def render_document(document: dict[str, Any], output: str) -> str:
    """One document (an object or a List) as JSON or YAML."""
    return dump_json(document) if output == "json" else dump_yaml(document)


class TableStream:
    """A table printed row by row (`get -w`): columns widen as longer cells arrive."""

    def __init__(self, headers: Sequence[str]) -> None:
        self.headers = list(headers)
        self.widths = [len(header) for header in headers]
        self.header_shown = False

    def widen(self, rows: Sequence[Sequence[str]]) -> None:
        for row in rows:
            for column, cell in enumerate(row):
                self.widths[column] = max(self.widths[column], len(cell))

    def line(self, cells: Sequence[str]) -> str:
        self.widen([cells])
        padded = [cell.ljust(self.widths[column]) for column, cell in enumerate(cells)]
        return COLUMN_GAP.join(padded).rstrip()

    def header(self) -> str:
        self.header_shown = True
        return self.line(self.headers)
