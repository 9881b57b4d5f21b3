"""Canary: move traffic to a new version in steps, judged by analysis, with exact Envoy weights.
A pure step machine over ReplicaSets, analysis runs and confirmed routing.

    no stable version yet ──► the first version becomes stable at once (no steps)
    new template ──► canary ReplicaSet (1 pod), weight 0 ──► steps, one at a time:
        setWeight N      scale the canary to ceil(replicas*N/100) (>= 1), wait until they are
                         available, route N % to it, wait for every node's confirmation
        pause            {duration}: wait; no duration: Paused until `rollout promote`
        analysis         create an AnalysisRun; Successful: next step; Failed/Error: ABORT;
                         Inconclusive: Paused until promote (skip) or abort
        setHeaderRoute   route requests matching the headers to the canary, confirmed
    after the last step (or `promote --full`): scale the canary to `replicas`, route 100 %,
    confirmed ─► it is the stable version; the old one stays warm scaleDownDelaySeconds
    ABORT (failed analysis, `rollout abort`): weight 0 and header routes off at once, then
        the canary is scaled to 0; Degraded with the reason. autoRollback also puts the
        stable template back into the spec. `rollout retry` starts the steps again.
    undo to a warm version: traffic switches back at once (no steps, no new process).

The stable version keeps `replicas` pods throughout: the canary is extra capacity, so a
weight never sends more load to a version than its pods were sized for.
"""

from __future__ import annotations

from shoal.api.deployment import Deployment
from shoal.api.replicaset import ReplicaSet
from shoal.api.rollout import CanarySettings
from shoal.controllers.strategies.base import RolloutContext, RolloutStep
from shoal.controllers.strategies.progressive import (
    Decision,
    abort,
    canary_replicas,
    degraded,
    hash_of,
    held_sizes,
    hold_aborted,
    progressing,
    switch_stable,
    undo_to_warm,
)

MAX_STEPS_PER_RECONCILE = 64


def settings_of(deployment: Deployment) -> CanarySettings:
    return deployment.spec.strategy.canary or CanarySettings()


def _steady(d: Decision, stable: ReplicaSet) -> None:
    """No rollout in progress: the stable version alone, at full size."""
    replicas = d.deployment.spec.replicas
    stable_hash = hash_of(stable)
    s = d.status
    s.new_hash, s.step_index, s.step_started_at, s.promote_full = None, None, None, False
    d.stop_run()
    d.scale(stable, replicas)
    confirmed = d.route(stable=stable_hash, canary=None, weight=0, header_routes=[])
    d.keep(stable_hash)
    if s.aborted:
        degraded(d)
    elif stable.status.available_replicas >= replicas and confirmed:
        d.state("Healthy", f"revision {stable_hash} serves all traffic")
    else:
        d.state(
            "Progressing",
            f"waiting for {stable_hash}: "
            f"{stable.status.available_replicas}/{replicas} pods available"
            + ("" if confirmed else ", routing not yet confirmed by every node"),
        )


def _abort(d: Decision, reason: str, stable: ReplicaSet) -> None:
    """No traffic to the canary (weight 0, no header routes; the stable route stays);
    autoRollback reverts the spec to the stable version."""
    revert_to = stable if settings_of(d.deployment).auto_rollback else None
    abort(d, reason, revert_to, canary=None, weight=0, header_routes=[])


def _handle_action(d: Decision, verb: str, stable: ReplicaSet, steps: int) -> None:
    s = d.status
    if verb == "abort":
        _abort(d, "aborted by user (shoal rollout abort)", stable)
    elif verb == "retry":
        if s.aborted:
            s.aborted, s.abort_reason = False, None
            s.step_index, s.step_started_at, s.attempt = 0, d.now, s.attempt + 1
            d.event("Normal", "RolloutRetried", "Rollout restarted from the first step")
    elif s.aborted:
        d.event("Warning", "PromoteIgnored", "The rollout is aborted; retry it first")
    elif verb == "promote-full":
        s.promote_full = True
        d.event("Normal", "RolloutPromoted", "Promoted fully: remaining steps skipped")
    elif verb == "promote" and (s.step_index or 0) < steps:
        d.event("Normal", "RolloutPromoted", f"Step {(s.step_index or 0) + 1} skipped by promote")
        _advance(d)


def _advance(d: Decision) -> None:
    d.stop_run()
    d.status.step_index = (d.status.step_index or 0) + 1
    d.status.step_started_at = d.now


def _run_step(d: Decision, stable: ReplicaSet, new: ReplicaSet) -> bool:
    """Work on the current step; True when it completed (go on with the next one)."""
    s = d.status
    settings = settings_of(d.deployment)
    index = s.step_index or 0
    step = settings.steps[index]
    replicas = d.deployment.spec.replicas
    new_hash = hash_of(new)
    where = f"step {index + 1}/{len(settings.steps)}"
    if step.set_weight is not None:
        weight = step.set_weight
        d.scale(new, canary_replicas(replicas, max(weight, s.traffic.weight)))
        needed = canary_replicas(replicas, weight)
        if new.status.available_replicas < needed:
            d.state(
                "Progressing",
                f"{where}: setWeight {weight}: waiting for canary pods "
                f"({new.status.available_replicas}/{needed} available)",
            )
            return False
        if d.route(canary=new_hash, weight=weight):
            d.event("Normal", "SetWeight", f"Canary {new_hash} weight {weight}%")
            return True
        d.state(
            "Progressing",
            f"{where}: setWeight {weight}: waiting for every node's Envoy to confirm the weights",
        )
        return False
    d.scale(new, canary_replicas(replicas, s.traffic.weight))
    if step.pause is not None:
        seconds = step.pause.seconds
        started = s.step_started_at or d.now
        s.step_started_at = started
        if seconds is None:
            message = f"{where}: paused; continue with `shoal rollout promote`"
            d.state("Paused", message, progressing("Unknown", "RolloutPaused", message))
            return False
        remaining = seconds - (d.now - started).total_seconds()
        if remaining <= 0:
            return True
        message = f"{where}: pausing {remaining:.0f}s more"
        d.state("Paused", message, progressing("True", "RolloutPaused", message))
        d.requeue(remaining)
        return False
    if step.analysis is not None:
        suffix = f"-{s.attempt}" if s.attempt else ""
        name = f"{d.deployment.metadata.name}-{new_hash}-{index + 1}{suffix}"
        problem = d.start_run(name, step.analysis, new_hash)
        if problem is not None:
            _abort(d, problem, stable)
            return False
        phase, detail = d.run_phase(name)
        if phase == "Successful":
            d.event("Normal", "AnalysisSuccessful", f"Analysis {name} successful")
            return True
        if phase in ("Failed", "Error"):
            _abort(d, f"analysis {name} {phase.lower()}: {detail}", stable)
            return False
        if phase == "Inconclusive":
            message = (
                f"{where}: analysis {name} inconclusive ({detail}); "
                "`shoal rollout promote` continues, `shoal rollout abort` stops"
            )
            d.state("Paused", message, progressing("Unknown", "RolloutPaused", message))
            return False
        message = f"{where}: analysis {name} {phase.lower()}"
        d.state("Progressing", message, progressing("True", "RolloutAnalysis", message))
        return False
    assert step.set_header_route is not None
    if d.route(canary=new_hash, header_routes=step.set_header_route.match):
        return True
    d.state("Progressing", f"{where}: setHeaderRoute: waiting for every node's Envoy")
    return False


def rollout(ctx: RolloutContext) -> RolloutStep:
    d = Decision(ctx)
    s = d.status
    deployment = ctx.deployment
    settings = settings_of(deployment)
    replicas = deployment.spec.replicas
    stable = d.stable_or_first()
    if stable is None:
        return d.finish()
    new = ctx.new
    if new is None and d.hold_if_paused():
        return d.finish()
    if new is None:
        d.step.create_new = canary_replicas(replicas, 0)
        s.aborted, s.abort_reason = False, None
        d.state("Progressing", "creating the canary ReplicaSet")
        return d.finish()
    new_hash = hash_of(new)
    if new_hash == s.stable_hash:
        verb = d.take_action()
        if verb is not None and verb != "abort":
            s.aborted, s.abort_reason = False, None
        _steady(d, stable)
        return d.finish()
    if undo_to_warm(d, new, settings.scale_down_delay_seconds, "Traffic"):
        _steady(d, new)
        return d.finish()
    if s.new_hash != new_hash:
        d.stop_run()
        s.new_hash, s.step_index, s.step_started_at = new_hash, 0, ctx.now
        s.aborted, s.abort_reason, s.promote_full, s.attempt = False, None, False, 0
        # A new (or replacing) canary starts without traffic; the stable version is routed
        # explicitly (adopted from another strategy, it was never routed by this one).
        d.route(stable=hash_of(stable), canary=new_hash, weight=0, header_routes=[])
        d.event("Normal", "RolloutStarted", f"Canary rollout of {new_hash} against {s.stable_hash}")
    verb = d.take_action()
    if verb is not None:
        _handle_action(d, verb, stable, len(settings.steps))
    d.scale(stable, replicas)
    d.keep(hash_of(stable), new_hash)
    if s.aborted:
        hold_aborted(d, new, "the canary", canary=None, weight=0, header_routes=[])
        return d.finish()
    if d.hold_if_paused():
        d.scale(new, max(new.spec.replicas, canary_replicas(replicas, s.traffic.weight)))
        return d.finish()
    for _ in range(MAX_STEPS_PER_RECONCILE):
        if s.promote_full or (s.step_index or 0) >= len(settings.steps):
            _promote(d, stable, new)
            return d.finish()
        if not _run_step(d, stable, new):
            return d.finish()
        _advance(d)
    return d.finish()


def _promote(d: Decision, stable: ReplicaSet, new: ReplicaSet) -> None:
    replicas = d.deployment.spec.replicas
    d.scale(new, replicas)
    if new.status.available_replicas < replicas:
        d.state(
            "Progressing",
            f"promoting: waiting for canary pods "
            f"({new.status.available_replicas}/{replicas} available)",
        )
        return
    d.stop_run()
    delay = settings_of(d.deployment).scale_down_delay_seconds
    switch_stable(d, new, delay, "RolloutCompleted", f"Revision {hash_of(new)} promoted to stable")
    d.state("Progressing", "switching all traffic to the new revision")


def scale(ctx: RolloutContext) -> dict[str, int]:
    """Sizes when spec.replicas changed or the Deployment is paused: stable at `replicas`,
    an ongoing canary in proportion to its weight; nothing advances."""
    replicas = ctx.deployment.spec.replicas
    return held_sizes(ctx, lambda status: canary_replicas(replicas, status.traffic.weight))


class Canary:
    """The `Strategy` object for `strategy.type: Canary`."""

    def max_surge(self, deployment: Deployment) -> int:
        return canary_replicas(deployment.spec.replicas, 100)

    def max_unavailable(self, deployment: Deployment) -> int:
        return deployment.spec.replicas // 4

    def rollout(self, context: RolloutContext) -> RolloutStep:
        return rollout(context)

    def scale(self, context: RolloutContext) -> dict[str, int]:
        return scale(context)
