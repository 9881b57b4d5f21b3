"""`shoal toggle`: list, inspect, switch, ramp and evaluate FeatureToggles.

Mounted by `shoal.cli.main` as `shoal toggle` (the `toggle_app` typer app). Every command only
needs an API client (`shoal.client.Client`): writes are read-modify-write with the
resourceVersion (retried on Conflict), and `eval` asks the server's evaluate endpoint, which
runs the same engine as the SDK, so the CLI shows what services decide.

    shoal toggle list [-n NS] [-o json|yaml|name]
    shoal toggle get NAME [-o json|yaml]
    shoal toggle enable NAME | disable NAME
    shoal toggle rollout NAME PERCENT [--stickiness userId]
    shoal toggle eval [NAME] --context userId=42 --context country=de [-o json]

Bad input is checked by the FeatureToggle model before anything is sent, so errors carry the
same field paths as the server's (`spec.rollout.percentage: ...`) and exit non-zero.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from shoal.api.errors import ApiError, Conflict, Invalid, causes_from_validation
from shoal.api.featuretoggle import FeatureToggle
from shoal.cli.context import Target, target
from shoal.client import Client

toggle_app = typer.Typer(
    help="Feature toggles: list, get, enable, disable, rollout, eval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

NameArgument = Annotated[str, typer.Argument(help="Toggle name", show_default=False)]
FormatOption = Annotated[
    str | None, typer.Option("--output", "-o", help="json, yaml or name", show_default=False)
]
ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        help="API server URL [env SHOAL_SERVER; default http://127.0.0.1:7070]",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace [default: default]", show_default=False),
]
WRITE_ATTEMPTS = 5


@contextmanager
def connect(where: Target) -> Iterator[Client]:
    """A client for one command; API errors become a message with field paths and exit 1."""
    client = Client(where.server)
    try:
        yield client
    except ApiError as error:
        lines = [f"error: {error.message}"]
        lines += [
            f"  {c.field}: {c.message}" if c.field else f"  {c.message}" for c in error.causes
        ]
        typer.echo("\n".join(lines), err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()


def dump_json(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def render_document(document: dict[str, Any], output: str) -> str:
    if output == "json":
        return dump_json(document)
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False).rstrip("\n")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _check_output(output: str | None, allowed: tuple[str, ...]) -> None:
    if output is not None and output not in allowed:
        raise typer.BadParameter(
            f"unknown output format {output!r} (use one of: {', '.join(allowed)})",
            param_hint="'--output' / '-o'",
        )


def rollout_text(toggle: FeatureToggle) -> str:
    rollout = toggle.spec.rollout
    return "100%" if rollout is None else f"{rollout.percentage}% by {rollout.stickiness}"


def _rows(toggles: list[FeatureToggle]) -> list[list[str]]:
    return [
        [
            t.metadata.name,
            "on" if t.spec.enabled else "off",
            rollout_text(t),
            str(len(t.spec.constraints)),
            ",".join(f"{v.name}:{v.weight}" for v in t.spec.variants) or "-",
            t.spec.owner or "-",
        ]
        for t in toggles
    ]


@toggle_app.command("list")
def list_command(
    server: ServerOption = None,
    namespace: NamespaceOption = None,
    output: FormatOption = None,
) -> None:
    """List the toggles of a namespace."""
    _check_output(output, ("json", "yaml", "name"))
    where = target(server, namespace)
    with connect(where) as client:
        listed = client.list(FeatureToggle, where.namespace)
    toggles = sorted(listed.items, key=lambda t: t.metadata.name)
    if output in ("json", "yaml"):
        document = {
            "apiVersion": "shoal/v1",
            "kind": "FeatureToggleList",
            "metadata": {"resourceVersion": str(listed.revision)},
            "items": [t.to_json() for t in toggles],
        }
        typer.echo(render_document(document, output))
    elif output == "name":
        for toggle in toggles:
            typer.echo(f"featuretoggle/{toggle.metadata.name}")
    elif not toggles:
        typer.echo(f"No toggles in namespace {where.namespace}.", err=True)
    else:
        table = Table("NAME", "ENABLED", "ROLLOUT", "CONSTRAINTS", "VARIANTS", "OWNER")
        for row in _rows(toggles):
            table.add_row(*row)
        _console().print(table)


def _describe(toggle: FeatureToggle) -> None:
    console = _console()
    spec = toggle.spec
    console.print(f"[bold]{toggle.metadata.name}[/]  ({toggle.metadata.namespace})")
    console.print(f"  enabled:     {'on' if spec.enabled else 'off'}")
    console.print(f"  rollout:     {rollout_text(toggle)}")
    if spec.description:
        console.print(f"  description: {spec.description}")
    if spec.owner:
        console.print(f"  owner:       {spec.owner}")
    if spec.constraints:
        table = Table(
            "CONTEXT", "OPERATOR", "VALUES", "OPTIONS", title="constraints (all must match)"
        )
        for c in spec.constraints:
            options = [
                o
                for o, on in (("caseInsensitive", c.case_insensitive), ("inverted", c.inverted))
                if on
            ]
            table.add_row(c.context_name, c.operator, ", ".join(c.values), " ".join(options))
        console.print(table)
    if spec.variants:
        table = Table(
            "VARIANT", "WEIGHT", "PAYLOAD", title=f"variants by {spec.variant_stickiness()}"
        )
        for v in spec.variants:
            payload = "" if v.payload is None else json.dumps(v.payload, ensure_ascii=False)
            table.add_row(v.name, f"{v.weight}%", payload)
        console.print(table)


@toggle_app.command("get")
def get_command(
    name: NameArgument,
    server: ServerOption = None,
    namespace: NamespaceOption = None,
    output: FormatOption = None,
) -> None:
    """Show one toggle (a summary, or the full object with -o json|yaml)."""
    _check_output(output, ("json", "yaml"))
    where = target(server, namespace)
    with connect(where) as client:
        toggle = client.get(FeatureToggle, name, where.namespace)
    if output is not None:
        typer.echo(render_document(toggle.to_json(), output))
    else:
        _describe(toggle)


def _modify(
    client: Client, name: str, namespace: str, change: Callable[[dict[str, Any]], None]
) -> FeatureToggle:
    """Read, change the wire form, validate locally (field paths), write with CAS; retry."""
    for _attempt in range(WRITE_ATTEMPTS):
        document = client.get(FeatureToggle, name, namespace).to_json()
        change(document["spec"])
        try:
            toggle = FeatureToggle.from_json(document)
        except ValidationError as error:
            raise Invalid(
                f"FeatureToggle {name!r} is invalid", causes_from_validation(error)
            ) from None
        try:
            return client.update(toggle)
        except Conflict:
            continue
    raise Conflict(f"toggle {name!r} kept changing while we wrote it; try again")


def _set_enabled(name: str, enabled: bool, server: str | None, namespace: str | None) -> None:
    where = target(server, namespace)
    with connect(where) as client:
        _modify(client, name, where.namespace, lambda spec: spec.update(enabled=enabled))
    typer.echo(f"featuretoggle/{name} {'enabled' if enabled else 'disabled'}")


@toggle_app.command("enable")
def enable_command(
    name: NameArgument,
    server: ServerOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Turn a toggle on (its rollout and constraints still apply)."""
    _set_enabled(name, True, server, namespace)


@toggle_app.command("disable")
def disable_command(
    name: NameArgument,
    server: ServerOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Kill switch: turn a toggle off for everybody, at once."""
    _set_enabled(name, False, server, namespace)


@toggle_app.command("rollout")
def rollout_command(
    name: NameArgument,
    percent: Annotated[int, typer.Argument(help="Share of users, 0..100", show_default=False)],
    stickiness: Annotated[
        str | None, typer.Option(help="Context attribute to hash (default: keep, or userId)")
    ] = None,
    server: ServerOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Set the rollout percentage (raising it keeps every user already enabled)."""
    where = target(server, namespace)

    def change(spec: dict[str, Any]) -> None:
        rollout = dict(spec.get("rollout") or {})
        rollout["percentage"] = percent
        if stickiness:
            rollout["stickiness"] = stickiness
        spec["rollout"] = rollout

    with connect(where) as client:
        toggle = _modify(client, name, where.namespace, change)
    note = "" if toggle.spec.enabled else " (the toggle is disabled: `shoal toggle enable`)"
    typer.echo(f"featuretoggle/{name} rolled out to {rollout_text(toggle)}{note}")


def parse_context(pairs: list[str]) -> dict[str, str]:
    """`["userId=42", "country=de"]` -> {"userId": "42", "country": "de"}."""
    context: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="'--context'")
        context[key.strip()] = value
    return context


@toggle_app.command("eval")
def eval_command(
    name: Annotated[str | None, typer.Argument(help="Toggle name (default: all)")] = None,
    context: Annotated[
        list[str] | None,
        typer.Option("--context", "-c", help="Context attribute KEY=VALUE (repeatable)"),
    ] = None,
    server: ServerOption = None,
    namespace: NamespaceOption = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="json")] = None,
) -> None:
    """Evaluate toggles for a context, as the services would (server-side engine)."""
    _check_output(output, ("json",))
    attributes = parse_context(context or [])
    where = target(server, namespace)
    base = f"/api/v1/namespaces/{where.namespace}/toggles"
    with connect(where) as client:
        if name is not None:
            answer = client.request_json(
                "POST", f"{base}/{name}/evaluate", json={"context": attributes}
            )
            answers = {name: answer}
        else:
            answers = client.request_json("POST", f"{base}/evaluate", json={"context": attributes})[
                "toggles"
            ]
    results = {
        toggle: {key: answer[key] for key in ("value", "variant", "reason", "payload")}
        for toggle, answer in answers.items()
    }
    if output == "json":
        typer.echo(dump_json({"context": attributes, "toggles": results}))
        return
    table = Table("TOGGLE", "VALUE", "VARIANT", "REASON", "PAYLOAD")
    for toggle, result in results.items():
        payload = (
            "" if result["payload"] is None else json.dumps(result["payload"], ensure_ascii=False)
        )
        table.add_row(
            toggle,
            "on" if result["value"] else "off",
            result["variant"] or "-",
            result["reason"],
            payload,
        )
    _console().print(table)
