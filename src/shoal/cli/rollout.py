"""`shoal rollout status|history|undo|pause|resume|restart|promote|abort|retry deployment/NAME`.

Every verb that changes a Deployment goes through `change_deployment`: read, change, write
with the read resourceVersion, and start again on a 409 Conflict, so a concurrent controller
write is never overwritten. The strategy verbs of BlueGreen and Canary (promote [--full],
abort, retry) write the annotation `rollout.shoal.dev/action: "<verb> <stamp>"`, which the
deployment controller acts on once (shoal.controllers.strategies.progressive); their
`rollout status` is the live view of `shoal.cli.rollout_view`.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from shoal.api.deployment import PROGRESSIVE_TYPES, REVISION_ANNOTATION, Deployment
from shoal.api.diffreport import DiffReport
from shoal.api.errors import Conflict
from shoal.api.replicaset import ReplicaSet
from shoal.cli.apply import duration_option
from shoal.cli.context import (
    NamespaceOption,
    ServerOption,
    Target,
    connect,
    resolve,
    split_reference,
    target,
)
from shoal.cli.diffs import print_diffs
from shoal.cli.durations import format_age
from shoal.cli.errors import CommandError
from shoal.cli.output import dump_yaml, render_table
from shoal.cli.progress import wait_for_rollouts
from shoal.cli.rollout_view import follow_rollout, request_action
from shoal.client import AsyncClient, Client

RESTARTED_AT_ANNOTATION = "shoal.dev/restartedAt"
CHANGE_CAUSE_ANNOTATIONS = ("shoal.dev/change-cause", "kubernetes.io/change-cause")
CONFLICT_RETRIES = 5

rollout_app = typer.Typer(help="Follow and steer a Deployment's rollouts.", no_args_is_help=True)

RefArgument = Annotated[str, typer.Argument(help="deployment/NAME, or the kind and the name")]
NameArgument = Annotated[str | None, typer.Argument(help="NAME, when KIND is given alone")]


def deployment_name(ref: str, name: str | None) -> str:
    """The Deployment's name from `deployment/web` or `deployment web`."""
    kind, resolved = split_reference(ref, name)
    if resolved is None:
        raise typer.BadParameter(f"give the object as deployment/NAME (got {ref!r})")
    if resolve(kind) is not Deployment:
        raise typer.BadParameter(f"rollout works on deployments, not {kind!r}")
    return resolved


@dataclass(frozen=True, slots=True)
class Edit:
    """What a change did to a Deployment; `changed` False means nothing to write."""

    message: str
    changed: bool = True


def change_deployment(
    client: Client, namespace: str, name: str, change: Callable[[Deployment], Edit]
) -> str:
    """Apply `change` to the stored Deployment, retrying on conflicts; returns its message.

    `change` edits the Deployment in place; an Edit with `changed` False is not written.
    """
    for _attempt in range(CONFLICT_RETRIES):
        deployment = client.get(Deployment, name, namespace=namespace)
        edit = change(deployment)
        if not edit.changed:
            return edit.message
        try:
            client.update(deployment)
        except Conflict:
            continue
        return edit.message
    raise CommandError(
        f"deployment/{name} kept changing under us ({CONFLICT_RETRIES} conflicts); try again"
    )


def pause(deployment: Deployment) -> Edit:
    ref = f"deployment/{deployment.metadata.name}"
    if deployment.spec.paused:
        return Edit(f"{ref} is already paused", changed=False)
    deployment.spec.paused = True
    return Edit(f"{ref} paused")


def resume(deployment: Deployment) -> Edit:
    ref = f"deployment/{deployment.metadata.name}"
    if not deployment.spec.paused:
        return Edit(f"{ref} is not paused", changed=False)
    deployment.spec.paused = False
    return Edit(f"{ref} resumed")


def restart(deployment: Deployment, now: datetime | None = None) -> Edit:
    """A new template annotation: a new template hash, hence a rollout of fresh pods."""
    moment = (now or datetime.now(UTC)).isoformat()
    deployment.spec.template.metadata.annotations[RESTARTED_AT_ANNOTATION] = moment
    return Edit(f"deployment/{deployment.metadata.name} restarted")


def revision_of(replicaset: ReplicaSet) -> int:
    try:
        return int(replicaset.metadata.annotations.get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def change_cause(replicaset: ReplicaSet) -> str:
    annotations = replicaset.metadata.annotations
    return next((annotations[k] for k in CHANGE_CAUSE_ANNOTATIONS if k in annotations), "<none>")


def owned_replicasets(deployment: Deployment, replicasets: list[ReplicaSet]) -> list[ReplicaSet]:
    """The Deployment's ReplicaSets by controller reference, oldest revision first."""
    owned = []
    for replicaset in replicasets:
        owner = replicaset.metadata.controller_ref()
        if owner is None or owner.kind != "Deployment" or owner.name != deployment.metadata.name:
            continue
        if deployment.metadata.uid and owner.uid and owner.uid != deployment.metadata.uid:
            continue
        owned.append(replicaset)
    return sorted(owned, key=revision_of)


def history_rows(replicasets: list[ReplicaSet], now: datetime) -> list[list[str]]:
    return [
        [
            str(revision_of(rs)),
            rs.metadata.name,
            format_age(rs.metadata.creation_timestamp, now),
            change_cause(rs),
        ]
        for rs in replicasets
    ]


def _history_of(client: Client, where: Target, name: str) -> list[ReplicaSet]:
    deployment = client.get(Deployment, name, namespace=where.namespace)
    listing = client.list(ReplicaSet, namespace=where.namespace)
    return owned_replicasets(deployment, listing.items)


@rollout_app.command("status")
def status_command(
    ref: RefArgument,
    name: NameArgument = None,
    *,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Give up after, e.g. 60s, 5m (default: never)")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch/--no-watch", help="Follow changes (BlueGreen, Canary)")
    ] = True,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Follow a rollout until it completes (exit 0), fails or times out (exit 1).

    BlueGreen and Canary rollouts show their step, weights per version, analysis
    measurements and what they wait for."""
    deployment = deployment_name(ref, name)
    seconds = duration_option(timeout) if timeout is not None else None
    where = target(server, namespace)
    with connect(where) as client:
        strategy = client.get(Deployment, deployment, namespace=where.namespace).spec.strategy
    if strategy.type not in PROGRESSIVE_TYPES:
        wait_for_rollouts(where.server, where.namespace, [deployment], seconds)
        return
    console = Console(highlight=False, soft_wrap=True)
    done = asyncio.run(
        follow_rollout(where.server, where.namespace, deployment, seconds, console, watch=watch)
    )
    if not done:
        raise CommandError(
            f"deployment/{deployment} is Degraded (see above); "
            f"`shoal rollout retry deployment/{deployment}` starts it again"
        )


@rollout_app.command("history")
def history_command(
    ref: RefArgument,
    name: NameArgument = None,
    *,
    revision: Annotated[
        int | None, typer.Option("--revision", help="Show this revision's pod template")
    ] = None,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """List a Deployment's revisions (from its ReplicaSets) and their change causes."""
    deployment = deployment_name(ref, name)
    where = target(server, namespace)
    with connect(where) as client:
        replicasets = _history_of(client, where, deployment)
    if revision is not None:
        chosen = next((rs for rs in replicasets if revision_of(rs) == revision), None)
        if chosen is None:
            known = ", ".join(str(revision_of(rs)) for rs in replicasets) or "none"
            raise CommandError(
                f"deployment/{deployment} has no revision {revision} (revisions: {known})"
            )
        typer.echo(f"deployment/{deployment} revision {revision}")
        typer.echo(dump_yaml(chosen.spec.template.to_json()))
        return
    typer.echo(f"deployment/{deployment}")
    if not replicasets:
        typer.echo("No revisions yet (the controller has not created a ReplicaSet).")
        return
    rows = history_rows(replicasets, datetime.now(UTC))
    typer.echo(render_table(["REVISION", "REPLICASET", "AGE", "CHANGE-CAUSE"], rows))


def _rollback_function() -> Callable[..., Any]:
    """The controllers' `rollback_deployment`, imported only when `undo` runs."""
    for module_name in ("shoal.controllers.rollback", "shoal.controllers.deployment"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        function: Callable[..., Any] | None = getattr(module, "rollback_deployment", None)
        if function is not None:
            return function
    raise CommandError("rollback is not available in this build (no rollback_deployment)")


def rollback(where: Target, name: str, to_revision: int | None) -> object:
    """Run the controllers' rollback (sync or async) with a client of the matching kind."""
    function = _rollback_function()
    if inspect.iscoroutinefunction(function):

        async def run() -> Any:
            async with AsyncClient(where.server) as client:
                return await function(client, where.namespace, name, to_revision=to_revision)

        return asyncio.run(run())
    with connect(where) as client:
        return function(client, where.namespace, name, to_revision=to_revision)


@rollout_app.command("undo")
def undo_command(
    ref: RefArgument,
    name: NameArgument = None,
    *,
    to_revision: Annotated[
        int | None, typer.Option("--to-revision", help="Revision to go back to (default: previous)")
    ] = None,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Roll a Deployment back to the previous (or a given) revision."""
    deployment = deployment_name(ref, name)
    if to_revision is not None and to_revision < 1:
        raise typer.BadParameter("must be >= 1", param_hint="'--to-revision'")
    where = target(server, namespace)
    rollback(where, deployment, to_revision)
    detail = f" to revision {to_revision}" if to_revision is not None else ""
    typer.echo(f"deployment/{deployment} rolled back{detail}")


def _change_command(
    ref: str,
    name: str | None,
    *,
    namespace: str | None,
    server: str | None,
    change: Callable[[Deployment], Edit],
) -> None:
    deployment = deployment_name(ref, name)
    where = target(server, namespace)
    with connect(where) as client:
        typer.echo(change_deployment(client, where.namespace, deployment, change))


@rollout_app.command("pause")
def pause_command(
    ref: RefArgument,
    name: NameArgument = None,
    *,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Stop a Deployment's rollout where it is (scaling still works)."""
    _change_command(ref, name, namespace=namespace, server=server, change=pause)


@rollout_app.command("resume")
def resume_command(
    ref: RefArgument,
    name: NameArgument = None,
    *,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Let a paused Deployment's rollout continue."""
    _change_command(ref, name, namespace=namespace, server=server, change=resume)


def action(verb: str) -> Callable[[Deployment], Edit]:
    """The Edit behind promote [--full], abort and retry."""
    return lambda deployment: Edit(request_action(deployment, verb))


@rollout_app.command("promote")
def promote_command(
    ref: RefArgument,
    name: NameArgument = None,
    *,
    full: Annotated[bool, typer.Option("--full", help="Skip every remaining step")] = False,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Continue a paused BlueGreen/Canary rollout (switch blue-green now; skip a canary step)."""
    verb = "promote-full" if full else "promote"
    _change_command(ref, name, namespace=namespace, server=server, change=action(verb))


@rollout_app.command("abort")
def abort_command(
    ref: RefArgument,
    name: NameArgument = None,
    *,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Stop a BlueGreen/Canary rollout: all traffic to the stable version, new pods scaled down."""
    _change_command(ref, name, namespace=namespace, server=server, change=action("abort"))


@rollout_app.command("retry")
def retry_command(
    ref: RefArgument,
    name: NameArgument = None,
    *,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Start an aborted BlueGreen/Canary rollout again from its first step."""
    _change_command(ref, name, namespace=namespace, server=server, change=action("retry"))


@rollout_app.command("restart")
def restart_command(
    ref: RefArgument,
    name: NameArgument = None,
    *,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Replace every pod with a fresh one, by the Deployment's rollout strategy."""
    _change_command(ref, name, namespace=namespace, server=server, change=restart)


def latest_report(reports: list[DiffReport], deployment: str) -> DiffReport | None:
    """The newest DiffReport about `deployment` (its current candidate's, in practice)."""
    mine = [report for report in reports if report.spec.deployment == deployment]
    return max(
        mine,
        key=lambda r: (
            r.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC),
            r.metadata.name,
        ),
        default=None,
    )


@rollout_app.command("diffs")
def diffs_command(
    ref: RefArgument,
    name: NameArgument = None,
    *,
    bodies: Annotated[
        bool, typer.Option("--bodies", help="Also print the example responses' bodies")
    ] = False,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Show what a parallel run found: the candidate's differences from the primary."""
    deployment = deployment_name(ref, name)
    where = target(server, namespace)
    with connect(where) as client:
        reports = client.list(DiffReport, namespace=where.namespace).items
    report = latest_report(reports, deployment)
    if report is None:
        raise CommandError(
            f"no DiffReport for deployment/{deployment} (is its strategy ParallelRun, "
            "and has the differ compared any request yet?)"
        )
    print_diffs(report.to_json(), bodies=bodies)
