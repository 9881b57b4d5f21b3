"""`shoal rollout status` for BlueGreen and Canary Deployments: a live view of the step machine.

    deployment/web  Canary  Paused
      steps     ✓ setWeight 20  ▶ pause  · analysis success-rate  · setWeight 50
      traffic   stable k5s9x (rev 1) 80%   canary 7dzq2 (rev 2) 20%   routing confirmed (v4)
      analysis  web-7dzq2-3 Running
                success-rate  Successful 0.998, Successful 0.997  (2 of 3)
      waiting   step 2/4: paused; continue with `shoal rollout promote`

`rollout_lines` is the pure part (a Deployment, its ReplicaSets and AnalysisRuns -> lines);
`follow_rollout` re-renders on every change of the Deployment or its runs: a rich Live panel
on a terminal, one block per change otherwise. It ends when the rollout is done (Healthy, no
version in flight: exit 0) or Degraded (exit 1); a pause keeps it waiting, as the view says.
Called by `shoal.cli.rollout`, which also takes `action(verb)`: the Edit behind
`rollout promote [--full] | abort | retry` (the annotation `rollout.shoal.dev/action`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from rich.console import Console
from rich.live import Live
from rich.text import Text

from shoal.api.analysis import AnalysisRun
from shoal.api.deployment import POD_TEMPLATE_HASH_LABEL, PROGRESSIVE_TYPES, Deployment
from shoal.api.diffreport import DiffReport
from shoal.api.replicaset import ReplicaSet
from shoal.api.rollout import ACTION_ANNOTATION, CanaryStep
from shoal.cli.errors import CommandError
from shoal.cli.parallel_view import fetch_report, parallel_rows
from shoal.cli.watching import follow_object
from shoal.client import AsyncClient

MEASUREMENTS_SHOWN = 5


def request_action(deployment: Deployment, verb: str, stamp: str | None = None) -> str:
    """Ask the rollout controller for `verb` (promote, promote-full, abort, retry) by
    annotation; returns what to tell the user. CommandError for other strategies."""
    ref = f"deployment/{deployment.metadata.name}"
    strategy = deployment.spec.strategy.type
    if strategy not in PROGRESSIVE_TYPES:
        word = verb.split("-", maxsplit=1)[0]
        raise CommandError(f"{ref} uses {strategy}; {word} works on BlueGreen and Canary")
    deployment.metadata.annotations[ACTION_ANNOTATION] = f"{verb} {stamp or time.time_ns()}"
    if strategy == "BlueGreen" and verb.startswith("promote"):
        return f"{ref} promoted (the active port switches to the new version)"
    return f"{ref} {ACTION_MESSAGES[verb]}"


ACTION_MESSAGES = {
    "promote": "promoted (the current step is skipped)",
    "promote-full": "promoted fully (every remaining step is skipped)",
    "abort": "aborted (traffic back to the stable version)",
    "retry": "retried (the rollout starts again)",
}


def describe_step(step: CanaryStep) -> str:
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    if step.pause is not None:
        return "pause" + (f" {step.pause.duration}" if step.pause.duration is not None else "")
    if step.analysis is not None:
        return "analysis " + ",".join(t.template_name for t in step.analysis.templates)
    assert step.set_header_route is not None
    rules = " ".join(f"{m.header}={m.exact}" for m in step.set_header_route.match)
    return f"setHeaderRoute {rules or '(off)'}"


def _revision(hash_: str | None, sets: list[ReplicaSet]) -> str:
    if hash_ is None:
        return "-"
    for rs in sets:
        if rs.metadata.labels.get(POD_TEMPLATE_HASH_LABEL) == hash_:
            revision = rs.metadata.annotations.get("deployment.shoal.dev/revision", "?")
            return f"{hash_} (rev {revision}, {rs.status.available_replicas} ready)"
    return hash_


def _steps_line(deployment: Deployment) -> str | None:
    settings = deployment.spec.strategy.canary
    rollout = deployment.status.rollout
    if settings is None or not settings.steps:
        return None
    current = rollout.step_index if rollout is not None else None
    marks = []
    for index, step in enumerate(settings.steps):
        if current is None:
            mark = "·"
        elif index < current:
            mark = "✓"
        elif index == current:
            mark = "✗" if rollout is not None and rollout.aborted else "▶"
        else:
            mark = "·"
        marks.append(f"{mark} {describe_step(step)}")
    return "  ".join(marks)


def _traffic_line(deployment: Deployment, sets: list[ReplicaSet]) -> str:
    rollout = deployment.status.rollout
    assert rollout is not None
    traffic = rollout.traffic
    if deployment.spec.strategy.type in ("BlueGreen", "ParallelRun"):
        preview = deployment.spec.strategy.blue_green
        port = f" (port {preview.preview_port})" if preview and preview.preview_port else ""
        parts = [f"active {_revision(traffic.stable, sets)}"]
        if deployment.spec.strategy.type == "BlueGreen":
            parts.append(f"preview{port} {_revision(traffic.canary or traffic.stable, sets)}")
        else:  # ParallelRun: the candidate whose copies the differ compares, if any
            parts.append(f"compared {_revision(traffic.canary, sets)}")
    else:
        weight = traffic.weight if traffic.canary else 0
        parts = [f"stable {_revision(traffic.stable, sets)} {100 - weight}%"]
        if traffic.canary:
            parts.append(f"canary {_revision(traffic.canary, sets)} {weight}%")
        if traffic.header_routes:
            rules = " ".join(f"{m.header}={m.exact}" for m in traffic.header_routes)
            parts.append(f"header route {rules} -> canary")
    state = (
        f"routing confirmed (v{traffic.version})"
        if rollout.traffic_confirmed
        else f"routing v{traffic.version} not yet confirmed (nodes at v{rollout.confirmed_version})"
    )
    return "   ".join([*parts, state])


def _analysis_lines(run: AnalysisRun) -> list[str]:
    lines = [f"{run.metadata.name} {run.status.phase}"]
    for metric in run.spec.metrics:
        result = run.status.result_of(metric.name)
        if result is None:
            lines.append(f"  {metric.name}  no measurement yet (every {metric.interval})")
            continue
        shown = [
            f"{m.phase} {m.value if m.value is not None else (m.message or '')}".strip()
            for m in result.measurements[-MEASUREMENTS_SHOWN:]
        ]
        lines.append(f"  {metric.name}  {', '.join(shown)}  ({result.count} of {metric.count})")
    if run.status.message and run.status.phase in ("Failed", "Error", "Inconclusive"):
        lines.append(f"  {run.status.message}")
    return lines


def _created(run: AnalysisRun) -> float:
    stamp = run.metadata.creation_timestamp
    return stamp.timestamp() if stamp is not None else 0.0


def rollout_lines(
    deployment: Deployment,
    sets: list[ReplicaSet],
    runs: list[AnalysisRun],
    report: DiffReport | None = None,
) -> list[tuple[str, str]]:
    """(label, text) rows describing where a progressive rollout stands."""
    rollout = deployment.status.rollout
    name = deployment.metadata.name
    strategy = deployment.spec.strategy.type
    if rollout is None:
        return [("", f"deployment/{name}  {strategy}  waiting for the controller")]
    paused = "  (spec.paused: `shoal rollout resume`)" if deployment.spec.paused else ""
    rows = [("", f"deployment/{name}  {strategy}  {rollout.phase}{paused}")]
    steps = _steps_line(deployment)
    if steps:
        rows.append(("steps", steps))
    rows.append(("traffic", _traffic_line(deployment, sets)))
    rows += parallel_rows(deployment, report, datetime.now(UTC))  # ParallelRun only
    current = next((r for r in runs if r.metadata.name == rollout.analysis_run), None)
    if current is None and runs and (rollout.new_hash is not None or rollout.aborted):
        current = max(runs, key=_created)  # the verdict that stopped or ended this rollout
    if current is not None:
        lines = _analysis_lines(current)
        rows.append(("analysis", lines[0]))
        rows += [("", line) for line in lines[1:]]
    if rollout.warm_until:
        warm = ", ".join(
            f"{h} until {t.strftime('%H:%M:%S')}" for h, t in sorted(rollout.warm_until.items())
        )
        rows.append(("warm", warm + " (instant undo)"))
    rows.append(("waiting" if not is_done(deployment) else "status", rollout.message))
    return rows


def render(rows: list[tuple[str, str]]) -> str:
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join(
        (f"  {label.ljust(width)}  {text}" if label or index else text)
        for index, (label, text) in enumerate(rows)
    )


def is_done(deployment: Deployment) -> bool:
    rollout = deployment.status.rollout
    return (
        rollout is not None
        and rollout.phase == "Healthy"
        and rollout.new_hash is None
        and deployment.status.observed_generation >= (deployment.metadata.generation or 0)
    )


def is_failed(deployment: Deployment) -> bool:
    rollout = deployment.status.rollout
    return rollout is not None and rollout.phase == "Degraded"


async def _snapshot(
    client: AsyncClient, deployment: Deployment
) -> tuple[list[ReplicaSet], list[AnalysisRun]]:
    namespace = deployment.metadata.namespace or "default"
    uid = deployment.metadata.uid
    sets = [
        rs
        for rs in (await client.list(ReplicaSet, namespace)).items
        if (ref := rs.metadata.controller_ref()) is not None and ref.uid == uid
    ]
    runs = [
        run
        for run in (await client.list(AnalysisRun, namespace)).items
        if (ref := run.metadata.controller_ref()) is not None and ref.uid == uid
    ]
    return sets, runs


async def follow_rollout(
    server: str, namespace: str, name: str, seconds: float | None, console: Console,
    *, watch: bool = True,
) -> bool:  # fmt: skip
    """Show the rollout until it is done (True) or degraded (False); CommandError on timeout."""
    last = ""
    async with AsyncClient(server) as client:
        live = Live(console=console, auto_refresh=False) if console.is_terminal else None
        with live if live is not None else contextlib.nullcontext():
            try:
                async with asyncio.timeout(seconds):
                    async for deployment in _changes(client, namespace, name):
                        if deployment is None:
                            raise CommandError(f"deployment/{name} not found (deleted?)")
                        sets, runs = await _snapshot(client, deployment)
                        report = await fetch_report(client, deployment)
                        text = render(rollout_lines(deployment, sets, runs, report))
                        if live is not None:
                            live.update(Text(text), refresh=True)
                        elif text != last:
                            console.print(text, markup=False, highlight=False, soft_wrap=True)
                        last = text
                        if is_done(deployment) or is_failed(deployment) or not watch:
                            return not is_failed(deployment)
            except TimeoutError:
                raise CommandError(
                    f"timed out waiting for deployment/{name}: {last.splitlines()[-1].strip()}"
                ) from None
    raise AssertionError("follow never ends")  # pragma: no cover


async def _changes(
    client: AsyncClient, namespace: str, name: str
) -> AsyncIterator[Deployment | None]:
    """The Deployment after each change of it, and at least every second (runs measure)."""
    stream = follow_object(client, Deployment, namespace, name)
    latest: Deployment | None = None
    pending: asyncio.Future[Deployment | None] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(stream))
            done, _ = await asyncio.wait({pending}, timeout=1.0)
            if done:
                latest = pending.result()
                pending = None
            yield latest
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
