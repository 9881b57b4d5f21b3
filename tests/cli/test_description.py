"""The `describe` text builder: one value column, <none> for nothing, aligned continuations."""

from __future__ import annotations

from shoal.cli.description import Description


def test_fields_align_on_one_column_whatever_the_indent() -> None:
    out = Description()
    out.field("Name", "web")
    out.field("Port", None, indent=2)
    out.field("A label longer than the column", "x")
    assert out.lines == [
        "Name:                   web",
        "  Port:                 <none>",
        "A label longer than the column: x",
    ]


def test_a_mapping_puts_further_pairs_under_the_first() -> None:
    out = Description()
    out.mapping("Labels", {"tier": "x", "app": "web"})
    out.mapping("Annotations", {})
    assert out.lines == [
        "Labels:                 app=web",
        "                        tier=x",
        "Annotations:            <none>",
    ]
