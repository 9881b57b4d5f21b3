"""The `shoal` command: the root typer app, global options and the process-level verbs.

Console-script entry point `shoal = "shoal.cli.main:main"`. Verb groups live in their own
modules (apply, get, describe, delete, diff, scale, rollout, events, logs) and are mounted
here; `server` and `agent` import their (heavier) implementations lazily so that `shoal get`
starts fast. Every verb runs inside `ShoalGroup`, the single error handler.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

import shoal
from shoal.cli import apply, delete, describe, diff, events, get, logs, rollout, scale, top
from shoal.cli.context import (
    NamespaceOption,
    RootOptions,
    ServerOption,
    connect,
    remember_root_options,
    target,
)
from shoal.cli.errors import CommandError, ShoalGroup

app = typer.Typer(
    name="shoal",
    cls=ShoalGroup,
    help="shoal: desired-state deployment for microservices, without containers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(server: ServerOption = None, namespace: NamespaceOption = None) -> None:
    """Global options; each verb also accepts --server and -n itself."""
    remember_root_options(RootOptions(server=server, namespace=namespace))


app.command("apply")(apply.apply_command)
app.command("get")(get.get_command)
app.command("describe")(describe.describe_command)
app.command("delete")(delete.delete_command)
app.command("diff")(diff.diff_command)
app.command("scale")(scale.scale_command)
app.command("events")(events.events_command)
app.command("logs")(logs.logs_command)
app.add_typer(rollout.rollout_app, name="rollout")
app.add_typer(top.top_app, name="top")


def _mount_toggle_app() -> None:
    """`shoal toggle ...` once the toggles helper's module exists; shoal works without it."""
    try:
        module = importlib.import_module("shoal.cli.toggle")
    except ImportError:
        return
    toggle_app = getattr(module, "toggle_app", None)
    if isinstance(toggle_app, typer.Typer):
        app.add_typer(toggle_app, name="toggle")


_mount_toggle_app()


@app.command(
    "differ",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def differ_command(ctx: typer.Context) -> None:
    """Run the parallel-run differ (its own flags: `shoal differ --help`)."""
    differ_main = importlib.import_module("shoal.differ.main")
    differ_main.main(list(ctx.args))


def run_entry_point(function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run a component's `run(...)`, whether it blocks or is a coroutine function."""
    outcome = function(*args, **kwargs)
    if inspect.isawaitable(outcome):
        asyncio.run(_await(outcome))


async def _await(awaitable: Awaitable[Any]) -> None:
    await awaitable


@app.command("server")
def server_command(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the server keeps its state")
    ] = Path(".shoal"),
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT of the HTTP API")
    ] = "127.0.0.1:7070",
    agent: Annotated[
        bool,
        typer.Option("--agent/--no-agent", help="Run this machine's node agent in the server"),
    ] = True,
    node_name: Annotated[
        str | None, typer.Option("--node-name", help="Embedded agent's node name (default: host)")
    ] = None,
) -> None:
    """Run the control plane: API server, store, controllers and the embedded node agent."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"must be HOST:PORT, not {listen!r}", param_hint="'--listen'")
    try:
        server_main = importlib.import_module("shoal.server.main")
    except ImportError as error:
        raise CommandError(f"the shoal server is not available in this build: {error}") from error
    run_entry_point(server_main.run, data_dir, listen, agent=agent, node_name=node_name)


@app.command("agent")
def agent_command(
    server: ServerOption = None,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the agent keeps pod state and logs")
    ] = Path(".shoal-agent"),
    node_name: Annotated[
        str | None, typer.Option("--node-name", help="Node name (default: host name)")
    ] = None,
    address: Annotated[
        str,
        typer.Option(
            "--address",
            help="IP address of this node: its agent API and Services' Envoy listeners bind "
            "it, Node.status.address advertises it (other nodes and the server reach it there)",
        ),
    ] = "127.0.0.1",
) -> None:
    """Run a node agent that starts this machine's pods and its Envoy."""
    problem = node_address_problem(address)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="'--address'")
    where = target(server)
    try:
        agent_main = importlib.import_module("shoal.agent.main")
    except ImportError as error:
        raise CommandError(f"the shoal agent is not available in this build: {error}") from error
    run_entry_point(
        agent_main.run, server=where.server, data_dir=data_dir, node_name=node_name,
        address=address,
    )  # fmt: skip


def node_address_problem(address: str) -> str | None:
    """Why `address` cannot be a node's address here (None when it can): it must be one IPv4
    address of this machine, not a wildcard, since it is advertised for others to connect to."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address (a host name is not accepted: give its IP)"
    if parsed.version != 4:
        return f"{address} is an IPv6 address; shoal nodes use IPv4 addresses"
    if parsed.is_unspecified:
        return "0.0.0.0 cannot be advertised as an address to connect to; give this node's IP"
    with socket.socket() as probe:
        try:
            probe.bind((address, 0))
        except OSError as error:
            return f"{address} is not an address of this machine ({error.strerror})"
    return None


@app.command("version")
def version_command(
    server: ServerOption = None,
    client_only: Annotated[
        bool, typer.Option("--client", help="Only the client's version")
    ] = False,
) -> None:
    """Print the client's version and the server's."""
    typer.echo(f"Client Version: {shoal.__version__}")
    if client_only:
        return
    where = target(server)
    with connect(where) as client:
        answer = client.request_json("GET", "/version")
    server_version = answer.get("version", "?") if isinstance(answer, dict) else answer
    typer.echo(f"Server Version: {server_version}")
    if isinstance(answer, dict) and answer.get("apiVersion"):
        typer.echo(f"API Version: {answer['apiVersion']}")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="shoal")


if __name__ == "__main__":
    main()
