"""BlueGreen: bring the new version up in full behind a preview port, then switch the active
Service to it in one confirmed Envoy update; the old version stays warm for instant undo.
A pure step machine over ReplicaSets, analysis runs and confirmed routing.

    new template ──► new ReplicaSet at `replicas` ──► all available ──► preview port routes
    to it (confirmed) ──► prePromotionAnalysis (if any; Failed: ABORT) ──► promotion:
        `shoal rollout promote`, or autoPromotionSeconds after the preview was ready
    ──► the active port routes to the new version (one RDS update, confirmed) ──► the old
    version stays warm scaleDownDelaySeconds ──► postPromotionAnalysis (if any) while the old
    one is held: Failed ─► traffic back to the old version at once, ABORT
    ABORT (also `rollout abort`): the preview port serves the active version again, the new
    ReplicaSet goes to 0; Degraded; autoRollback also puts the old template into the spec.
    undo to a warm version: the active port switches back at once (no new process).

While no rollout is in progress the preview port serves the active version, so it always
answers.
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.api.deployment import Deployment
from shoal.api.replicaset import ReplicaSet
from shoal.api.rollout import BlueGreenSettings
from shoal.controllers.strategies.base import RolloutContext, RolloutStep
from shoal.controllers.strategies.progressive import (
    Decision,
    abort,
    degraded,
    hash_of,
    held_sizes,
    hold_aborted,
    progressing,
    switch_stable,
    undo_to_warm,
)


def settings_of(deployment: Deployment) -> BlueGreenSettings:
    return deployment.spec.strategy.blue_green or BlueGreenSettings()


def _run_suffix(d: Decision) -> str:
    return f"-{d.status.attempt}" if d.status.attempt else ""


def _switch(d: Decision, new: ReplicaSet, reason: str, message: str) -> None:
    switch_stable(d, new, settings_of(d.deployment).scale_down_delay_seconds, reason, message)
    d.status.ready_since = None


def _abort(d: Decision, reason: str, back_to: ReplicaSet | None) -> None:
    """The active port keeps (or gets back) the stable version; autoRollback reverts the spec
    to `back_to`."""
    revert_to = back_to if settings_of(d.deployment).auto_rollback else None
    abort(d, reason, revert_to, stable=d.status.stable_hash, canary=None)


def _post_promotion(d: Decision, active: ReplicaSet, verb: str | None) -> set[str]:
    """Judge the version just promoted while the previous one is held; returns the hashes
    to keep running."""
    s = d.status
    ref = settings_of(d.deployment).post_promotion_analysis
    previous = d.by_hash.get(s.previous_stable_hash or "")
    if s.post_promotion_done or ref is None or previous is None:
        s.post_promotion_done = True
        return set()
    name = f"{d.deployment.metadata.name}-{hash_of(active)}-post{_run_suffix(d)}"
    problem = d.start_run(name, ref, hash_of(active))
    phase, detail = d.run_phase(name)
    if verb == "promote" or phase == "Successful":
        s.post_promotion_done = True
        d.stop_run()
        d.event("Normal", "AnalysisSuccessful", f"Post-promotion analysis {name}: {phase}")
        return set()
    failure = problem
    if phase in ("Failed", "Error"):
        failure = f"post-promotion analysis {name} {phase.lower()}: {detail}"
    elif verb == "abort":
        failure = "aborted by user (shoal rollout abort) after promotion"
    if failure is not None:
        # Back to the held version at once; the promoted one becomes an aborted rollout.
        d.route(stable=hash_of(previous), canary=None)
        s.stable_hash, s.new_hash, s.previous_stable_hash = hash_of(previous), hash_of(active), None
        s.post_promotion_done = True
        _abort(d, failure, previous)
        return {hash_of(previous)}
    message = f"post-promotion analysis {name} {phase.lower()}; previous version held"
    if phase == "Inconclusive":
        d.state(
            "Paused",
            message + " (promote accepts, abort rolls back)",
            progressing("Unknown", "RolloutPaused", message),
        )
    else:
        d.state("Progressing", message, progressing("True", "RolloutAnalysis", message))
    return {hash_of(previous)}


def _steady(d: Decision, active: ReplicaSet, verb: str | None) -> None:
    s = d.status
    replicas = d.deployment.spec.replicas
    active_hash = hash_of(active)
    s.new_hash, s.step_index, s.promote_full, s.ready_since = None, None, False, None
    d.scale(active, replicas)
    confirmed = d.route(stable=active_hash, canary=None, weight=0, header_routes=[])
    held: set[str] = set()
    if confirmed and not s.aborted:
        held = _post_promotion(d, active, verb)
        if s.stable_hash != active_hash:  # rolled back: the aborted version is handled next
            d.keep(s.stable_hash, active_hash)
            degraded(d)
            return
    elif not s.post_promotion_done and s.previous_stable_hash:
        held = {s.previous_stable_hash}
    d.keep(active_hash, *held)
    if s.aborted:
        degraded(d)
    elif held:
        return  # _post_promotion said what it waits for
    elif active.status.available_replicas >= replicas and confirmed:
        d.state("Healthy", f"revision {active_hash} is active")
    else:
        d.state(
            "Progressing",
            f"activating {active_hash}: "
            f"{active.status.available_replicas}/{replicas} pods available"
            + ("" if confirmed else ", switch not yet confirmed by every node"),
        )


def _await_promotion(d: Decision, new: ReplicaSet) -> None:
    s = d.status
    settings = settings_of(d.deployment)
    port = f" on port {settings.preview_port}" if settings.preview_port else ""
    if s.step_index == 0:
        ref = settings.pre_promotion_analysis
        if ref is not None and not s.promote_full:
            name = f"{d.deployment.metadata.name}-{hash_of(new)}-pre{_run_suffix(d)}"
            problem = d.start_run(name, ref, hash_of(new))
            phase, detail = d.run_phase(name)
            if problem is not None or phase in ("Failed", "Error"):
                _abort(
                    d,
                    problem or f"pre-promotion analysis {name} {phase.lower()}: {detail}",
                    d.by_hash.get(s.stable_hash or ""),
                )
                return
            if phase != "Successful":
                message = f"preview{port}: pre-promotion analysis {name} {phase.lower()}"
                if phase == "Inconclusive":
                    d.state("Paused", message, progressing("Unknown", "RolloutPaused", message))
                else:
                    d.state("Progressing", message, progressing("True", "RolloutAnalysis", message))
                return
            d.stop_run()
            d.event("Normal", "AnalysisSuccessful", f"Pre-promotion analysis {name} successful")
        s.step_index = 1
    if s.promote_full:
        _switch(d, new, "RolloutPromoted", f"Revision {hash_of(new)} is now active")
        s.post_promotion_done = settings.post_promotion_analysis is None
        d.state("Progressing", "switching the active port to the new revision")
        return
    if settings.auto_promotion_seconds is not None:
        ready = s.ready_since or d.now
        remaining = settings.auto_promotion_seconds - (d.now - ready).total_seconds()
        if remaining <= 0:
            s.promote_full = True
            _await_promotion(d, new)
            return
        message = f"preview{port} ready; promoting automatically in {remaining:.0f}s"
        d.state("Paused", message, progressing("True", "RolloutPaused", message))
        d.requeue(remaining)
        return
    message = f"preview{port} ready; switch with `shoal rollout promote`"
    d.state("Paused", message, progressing("Unknown", "RolloutPaused", message))


def _handle_action(d: Decision, verb: str | None) -> None:
    s = d.status
    if verb == "abort":
        _abort(d, "aborted by user (shoal rollout abort)", d.by_hash.get(s.stable_hash or ""))
    elif verb == "retry" and s.aborted:
        s.aborted, s.abort_reason, s.step_index, s.ready_since = False, None, 0, None
        s.attempt += 1
        d.event("Normal", "RolloutRetried", "Rollout restarted")
    elif verb in ("promote", "promote-full"):
        if s.aborted:
            d.event("Warning", "PromoteIgnored", "The rollout is aborted; retry it first")
        else:
            s.promote_full = True


# What happens once the new version is fully up and routed to the preview (confirmed): wait
# for promotion here; ParallelRun (`strategies.parallel`) compares it against the active one.
PromotionGate = Callable[[Decision, ReplicaSet], None]


def rollout(ctx: RolloutContext, gate: PromotionGate | None = None) -> RolloutStep:
    d = Decision(ctx)
    s = d.status
    replicas = ctx.deployment.spec.replicas
    active = d.stable_or_first()
    if active is None:
        return d.finish()
    new = ctx.new
    if new is None and d.hold_if_paused():
        return d.finish()
    if new is None:
        d.step.create_new = replicas
        s.aborted, s.abort_reason = False, None
        d.state("Progressing", "creating the new (preview) ReplicaSet")
        return d.finish()
    new_hash = hash_of(new)
    if new_hash == s.stable_hash:
        _steady(d, active, d.take_action())
        return d.finish()
    if undo_to_warm(d, new, settings_of(ctx.deployment).scale_down_delay_seconds, "Active port"):
        s.post_promotion_done = True
        _steady(d, new, None)
        return d.finish()
    if s.new_hash != new_hash:
        d.stop_run()
        s.new_hash, s.step_index, s.ready_since, s.attempt = new_hash, 0, None, 0
        s.aborted, s.abort_reason, s.promote_full = False, None, False
        d.route(stable=hash_of(active), canary=None)  # the preview waits for the new pods
        d.event(
            "Normal", "RolloutStarted", f"Blue-green rollout of {new_hash} (active {s.stable_hash})"
        )
    _handle_action(d, d.take_action())
    d.scale(active, replicas)
    d.keep(hash_of(active), new_hash)
    if s.aborted:
        hold_aborted(d, new, "it", stable=hash_of(active), canary=None)
        return d.finish()
    if d.hold_if_paused():
        return d.finish()
    d.scale(new, replicas)
    if new.status.available_replicas < replicas:
        d.state(
            "Progressing",
            f"preview {new_hash}: waiting for pods "
            f"({new.status.available_replicas}/{replicas} available)",
        )
        return d.finish()
    if not d.route(stable=hash_of(active), canary=new_hash):
        d.state("Progressing", "waiting for every node's Envoy to route the preview")
        return d.finish()
    s.ready_since = s.ready_since or ctx.now
    (gate or _await_promotion)(d, new)
    return d.finish()


def scale(ctx: RolloutContext) -> dict[str, int]:
    """Sizes when spec.replicas changed or the Deployment is paused: the active version and
    an ongoing (not aborted) new version at `replicas`; nothing advances."""
    return held_sizes(ctx, lambda _: ctx.deployment.spec.replicas)


class BlueGreen:
    """The `Strategy` object for `strategy.type: BlueGreen`."""

    def max_surge(self, deployment: Deployment) -> int:
        return deployment.spec.replicas

    def max_unavailable(self, deployment: Deployment) -> int:
        return deployment.spec.replicas // 4

    def rollout(self, context: RolloutContext) -> RolloutStep:
        return rollout(context)

    def scale(self, context: RolloutContext) -> dict[str, int]:
        return scale(context)
