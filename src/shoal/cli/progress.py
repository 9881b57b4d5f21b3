"""Rollout progress: is a Deployment's rollout done, failing or still moving, and waiting for it.

`rollout_state` is the pure judgement. RollingUpdate and Recreate follow kubectl's rules: the
spec must be observed, every replica updated, no old replica left, every updated replica
available; the controller's ProgressDeadlineExceeded condition is a failure. BlueGreen, Canary
and ParallelRun are judged by their step machine (`status.rollout`, `progressive_state`):
Healthy with no version in flight is done; Degraded (aborted, a failed analysis) is a failure
with its reason; Paused waiting for a person (`pause: {}`, a blue-green preview without
autoPromotionSeconds, an inconclusive analysis: the controller marks these Progressing=Unknown,
RolloutPaused) ends the wait successfully with `paused` set and a line saying what it waits
for, so `apply --wait` in a pipeline returns and the next step can promote; a timed pause or a
running analysis keeps waiting. `wait_for_rollouts` follows Deployments through the watch API
until each is done, showing a live rich progress bar on a terminal and one line per change
otherwise. Used by `apply --wait` and by `rollout status` for RollingUpdate and Recreate (its
BlueGreen and Canary view is `shoal.cli.rollout_view`, which waits through pauses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Column

from shoal.api.deployment import PROGRESSIVE_TYPES, Deployment
from shoal.api.meta import find_condition
from shoal.cli.durations import format_seconds
from shoal.cli.errors import CommandError
from shoal.cli.rollout_view import describe_step
from shoal.cli.watching import follow_object
from shoal.client import AsyncClient

PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
ROLLOUT_PAUSED = "RolloutPaused"  # the step machine's Progressing reason while it waits


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Where a rollout stands; `done` and `failed` are final. `paused`: done for now, a
    progressive rollout waits for `shoal rollout promote` (or abort)."""

    message: str
    done: bool = False
    failed: bool = False
    paused: bool = False
    desired: int = 0
    ready: int = 0


def rollout_state(deployment: Deployment | None, name: str) -> RolloutState:
    """Judge a Deployment's rollout from its spec and status (None: it does not exist)."""
    if deployment is None:
        return RolloutState(f'deployment "{name}" not found (deleted?)', failed=True)
    spec, status = deployment.spec, deployment.status
    desired = spec.replicas
    ready = min(status.updated_replicas, status.available_replicas)
    if status.observed_generation < (deployment.metadata.generation or 0):
        return RolloutState(
            "Waiting for deployment spec update to be observed...", desired=desired, ready=ready
        )
    progressing = find_condition(status.conditions, "Progressing")
    if progressing is not None and progressing.reason == PROGRESS_DEADLINE_EXCEEDED:
        detail = f": {progressing.message}" if progressing.message else ""
        return RolloutState(
            f'deployment "{name}" exceeded its progress deadline{detail}',
            failed=True,
            desired=desired,
            ready=ready,
        )
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if spec.strategy.type in PROGRESSIVE_TYPES and not spec.paused:
        return progressive_state(deployment, name)
    if spec.paused:
        message = (
            f'deployment "{name}" is paused (resume it with '
            f"`shoal rollout resume deployment/{name}`)"
        )
    elif status.updated_replicas < desired:
        message = (
            f"{prefix}{status.updated_replicas} out of {desired} new replicas have been updated..."
        )
    elif status.replicas > status.updated_replicas:
        message = (
            f"{prefix}{status.replicas - status.updated_replicas} old replicas are "
            "pending termination..."
        )
    elif status.available_replicas < status.updated_replicas:
        message = (
            f"{prefix}{status.available_replicas} of {status.updated_replicas} updated "
            "replicas are available..."
        )
    else:
        return RolloutState(
            f'deployment "{name}" successfully rolled out', done=True, desired=desired, ready=ready
        )
    return RolloutState(message, desired=desired, ready=ready)


def _current_step(deployment: Deployment) -> str:
    """ " at step N/M (what)" for a canary inside its steps, else ""."""
    canary = deployment.spec.strategy.canary
    rollout = deployment.status.rollout
    if canary is None or rollout is None or rollout.step_index is None:
        return ""
    if not 0 <= rollout.step_index < len(canary.steps):
        return ""
    what = describe_step(canary.steps[rollout.step_index])
    return f" at step {rollout.step_index + 1}/{len(canary.steps)} ({what})"


def progressive_state(deployment: Deployment, name: str) -> RolloutState:
    """Judge a BlueGreen, Canary or ParallelRun rollout from its step machine's state."""
    status, rollout = deployment.status, deployment.status.rollout
    desired = deployment.spec.replicas
    ready = min(status.updated_replicas, status.available_replicas)
    ref = f"deployment/{name}"
    if rollout is None:
        return RolloutState(
            f'Waiting for deployment "{name}" rollout to finish: waiting for the controller',
            desired=desired,
            ready=ready,
        )
    if rollout.phase == "Degraded":
        reason = rollout.abort_reason or rollout.message or "aborted"
        return RolloutState(
            f'deployment "{name}" rollout is Degraded: {reason} '
            f"(`shoal rollout retry {ref}` starts it again)",
            failed=True,
            desired=desired,
            ready=ready,
        )
    if (
        rollout.phase == "Healthy"
        and rollout.new_hash is None
        and status.updated_replicas >= desired
    ):
        return RolloutState(
            f'deployment "{name}" successfully rolled out (revision {rollout.stable_hash} '
            "serves all traffic)",
            done=True,
            desired=desired,
            ready=ready,
        )
    progressing = find_condition(status.conditions, "Progressing")
    waits_for_a_person = (
        rollout.phase == "Paused"
        and progressing is not None
        and progressing.reason == ROLLOUT_PAUSED
        and progressing.status == "Unknown"
    )
    if waits_for_a_person:
        step = _current_step(deployment)
        # A plain `pause: {}` says it all; otherwise the controller's message says why.
        why = "" if step.endswith("(pause)") else f" ({rollout.message})"
        return RolloutState(
            f'deployment "{name}" rollout is paused{step}, waiting for `shoal rollout promote '
            f"{ref}` (`shoal rollout abort {ref}` rolls back){why}",
            done=True,
            paused=True,
            desired=desired,
            ready=ready,
        )
    return RolloutState(
        f'Waiting for deployment "{name}" rollout to finish: {rollout.message or rollout.phase}',
        desired=desired,
        ready=ready,
    )


class _Display:
    """Live bars on a terminal; one line per new message otherwise (logs, pipes, tests)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[ref]}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=20),
            TextColumn("{task.completed}/{task.total}", table_column=Column(no_wrap=True)),
            TextColumn(
                "{task.fields[message]}",
                markup=False,
                table_column=Column(no_wrap=True, overflow="ellipsis"),
            ),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.last: dict[str, str] = {}

    def __enter__(self) -> _Display:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.live:
            self.progress.stop()

    def show(self, ref: str, state: RolloutState) -> None:
        if not self.live:
            if self.last.get(ref) != state.message:
                self.console.print(state.message, markup=False, highlight=False, soft_wrap=True)
            self.last[ref] = state.message
            return
        if ref not in self.tasks:
            self.tasks[ref] = self.progress.add_task("", ref=ref, message="", total=1)
        # The bar already names the deployment: show only what it is waiting for.
        message = state.message.split(" rollout to finish: ", 1)[-1]
        self.progress.update(
            self.tasks[ref],
            total=max(state.desired, 1),
            completed=state.ready,
            message=message,
        )
        self.last[ref] = state.message


async def _follow(
    client: AsyncClient, namespace: str, name: str, display: _Display
) -> RolloutState:
    ref = f"deployment/{name}"
    async for deployment in follow_object(client, Deployment, namespace, name):
        state = rollout_state(deployment, name)
        display.show(ref, state)
        if state.done or state.failed:
            return state
    raise AssertionError("follow_object never ends")  # pragma: no cover


async def _wait_all(
    server: str, namespace: str, names: Sequence[str], seconds: float | None, console: Console
) -> list[RolloutState]:
    async with AsyncClient(server) as client:
        with _Display(console) as display:
            try:
                async with asyncio.timeout(seconds):
                    return list(
                        await asyncio.gather(
                            *(_follow(client, namespace, name, display) for name in names)
                        )
                    )
            except TimeoutError:
                pending = [
                    f"deployment/{n}: {display.last.get(f'deployment/{n}', '')}" for n in names
                ]
                raise CommandError(
                    f"timed out after {format_seconds(seconds or 0)} waiting for the rollout "
                    "(" + "; ".join(pending) + "); see why with `shoal describe "
                    f"deployment/{names[0]}` and `shoal get pods -n {namespace}`"
                ) from None


def wait_for_rollouts(
    server: str,
    namespace: str,
    names: Sequence[str],
    timeout: float | None,
    console: Console | None = None,
) -> None:
    """Block until every named Deployment has rolled out; CommandError on failure or timeout."""
    if not names:
        return
    console = console or Console(highlight=False, soft_wrap=True)
    states = asyncio.run(_wait_all(server, namespace, names, timeout, console))
    failures = [state.message for state in states if state.failed]
    if failures:
        raise CommandError("; ".join(failures))
    if not console.is_terminal:
        return
    for state in states:
        console.print(state.message, markup=False)
