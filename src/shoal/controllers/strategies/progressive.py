"""What BlueGreen and Canary share: a builder for one reconcile's decision (`Decision`), the
traffic switch protocol, user actions, warm old versions and analysis runs. Pure.

Traffic protocol: the desired routing lives in `status.rollout.traffic` with a version that
grows on every change; each node's agent routes it and, once its Envoy confirmed the update,
reports the version in `Node.status.traffic`. `Decision.route(...)` returns True only when
the routing is already in place AND confirmed by every Ready node, so a strategy never counts
a switch (nor scales a version down) before Envoy stopped sending it traffic.

User actions arrive as the annotation `rollout.shoal.dev/action: "<verb> <stamp>"` (verbs:
promote, promote-full, abort, retry); a value is acted on once (`status.rollout.handledAction`).

Old versions stay "warm" after a switch: `warmUntil[hash]` keeps their pods until then, so an
undo within `scaleDownDelaySeconds` switches traffic back without starting a process
(`switch_stable`, `undo_to_warm`). An abort (`abort`, then `hold_aborted` on every later
reconcile) takes traffic off the new version at once and scales it down once confirmed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from shoal.analysis.run import MissingArgumentsError, build_run_spec
from shoal.api.analysis import AnalysisRun, RunPhase
from shoal.api.deployment import POD_TEMPLATE_HASH_LABEL, Deployment
from shoal.api.meta import Condition, ObjectMeta, OwnerReference
from shoal.api.pod import PodTemplateSpec
from shoal.api.replicaset import ReplicaSet
from shoal.api.rollout import AnalysisRef, RolloutPhase, RolloutStatus, TrafficRouting
from shoal.controllers.strategies.base import RolloutContext, RolloutStep, revision_of

ANALYSIS_RUN_LABEL = "rollout.shoal.dev/deployment"


def hash_of(rs: ReplicaSet) -> str:
    return rs.metadata.labels.get(POD_TEMPLATE_HASH_LABEL, rs.metadata.name)


def canary_replicas(replicas: int, weight: int) -> int:
    """Pods for a canary taking `weight` % of traffic: in proportion, at least one."""
    if replicas <= 0:
        return 0
    return max(1, math.ceil(replicas * weight / 100))


def stripped_template(rs: ReplicaSet) -> PodTemplateSpec:
    """The ReplicaSet's pod template as the Deployment spec would hold it (autoRollback)."""
    template = rs.spec.template.model_copy(deep=True)
    template.metadata.labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return template


def progressing(
    status: Literal["True", "False", "Unknown"], reason: str, message: str
) -> Condition:
    return Condition(type="Progressing", status=status, reason=reason, message=message)


class Decision:
    """One reconcile's decision, built step by step by a strategy, then `finish()`ed."""

    def __init__(self, ctx: RolloutContext) -> None:
        self.ctx = ctx
        self.deployment: Deployment = ctx.deployment
        self.now = ctx.now
        previous = ctx.deployment.status.rollout or RolloutStatus()
        self.status = previous.model_copy(deep=True)
        confirmed = ctx.observed.confirmed_traffic
        self.status.confirmed_version = (
            self.status.traffic.version if confirmed is None else confirmed
        )
        self.step = RolloutStep()
        self.by_hash = {hash_of(rs): rs for rs in ctx.all}
        self.kept: set[str] = set()

    # -- replica sets ------------------------------------------------------------------
    def scale(self, rs: ReplicaSet, replicas: int) -> None:
        if rs.spec.replicas != replicas:
            self.step.scales[rs.metadata.name] = replicas
        else:
            self.step.scales.pop(rs.metadata.name, None)

    def adopt_stable(self) -> ReplicaSet | None:
        """The stable version's ReplicaSet; without one recorded (first rollout under this
        strategy) the old ReplicaSet serving the most, newest on ties."""
        known = self.by_hash.get(self.status.stable_hash or "")
        if known is not None:
            return known
        running = [rs for rs in self.ctx.old if rs.spec.replicas > 0]
        if not running:
            return None
        best = max(running, key=lambda rs: (rs.status.available_replicas, revision_of(rs)))
        self.status.stable_hash = hash_of(best)
        return best

    def stable_or_first(self) -> ReplicaSet | None:
        """The stable version, kept this time. Before any version exists, plan the first one
        at full size and return None (the caller finishes): there is nothing to compare yet."""
        stable = self.adopt_stable()
        if stable is None:
            if self.ctx.new is None:
                self.step.create_new = self.ctx.deployment.spec.replicas
                self.state("Progressing", "creating the first revision")
                return None
            stable = self.ctx.new
            self.status.stable_hash = hash_of(stable)
        self.keep(hash_of(stable))
        return stable

    def keep_warm(self, old_hash: str | None, seconds: float) -> None:
        if old_hash is not None and seconds > 0:
            self.status.warm_until[old_hash] = self.now + timedelta(seconds=seconds)

    def keep(self, *hashes: str | None) -> None:
        """These versions keep their pods this time (`finish` scales the others down)."""
        self.kept.update(h for h in hashes if h)

    def _scale_down_others(self) -> None:
        """Versions neither kept nor routed go to 0 once the routing without them is
        confirmed and their warm time is over (look again then). Runs last, after every
        routing change of this decision."""
        traffic = self.status.traffic
        keep = self.kept | {h for h in (traffic.stable, traffic.canary) if h}
        for rs_hash, rs in self.by_hash.items():
            if rs_hash in keep:
                continue
            until = self.status.warm_until.get(rs_hash)
            if until is not None and self.now < until:
                if rs.spec.replicas > 0:
                    self.requeue((until - self.now).total_seconds())
                continue
            self.status.warm_until.pop(rs_hash, None)
            if rs.spec.replicas > 0 and self.status.traffic_confirmed:
                self.scale(rs, 0)
        for rs_hash in list(self.status.warm_until):
            if rs_hash not in self.by_hash:
                del self.status.warm_until[rs_hash]

    # -- traffic -----------------------------------------------------------------------
    def route(self, **changes: Any) -> bool:
        """Want this routing; True when it is in place and every node confirmed it."""
        current = self.status.traffic
        wanted = current.model_copy(update=changes)
        wanted = TrafficRouting.model_validate(wanted.model_dump())
        if not wanted.same_routes(current):
            wanted.version = current.version + 1
            self.status.traffic = wanted
            return False
        return self.status.traffic_confirmed

    # -- actions -----------------------------------------------------------------------
    def take_action(self) -> str | None:
        """The user's new action verb (once per annotation value), or None."""
        value = self.ctx.observed.action
        if not value or value == self.status.handled_action:
            return None
        self.status.handled_action = value
        return value.split()[0]

    # -- analysis ----------------------------------------------------------------------
    def run_named(self, name: str) -> AnalysisRun | None:
        return next((r for r in self.ctx.observed.analysis_runs if r.metadata.name == name), None)

    def run_phase(self, name: str) -> tuple[RunPhase, str]:
        """The run's phase and message ("Pending" and "" while it is not observed yet)."""
        run = self.run_named(name)
        if run is None:
            return "Pending", ""
        return run.status.phase, run.status.message or ""

    def start_run(self, name: str, ref: AnalysisRef, canary_hash: str | None) -> str | None:
        """Create the run `name` unless it exists; returns an error message when it cannot be
        built (a template vanished, an argument has no value)."""
        self.status.analysis_run = name
        if self.run_named(name) is not None:
            return None
        meta = self.deployment.metadata
        builtin = {
            "namespace": meta.namespace or "default",
            "deployment": meta.name,
            "stable-hash": self.status.stable_hash or "",
            "canary-hash": canary_hash or "",
        }
        try:
            spec = build_run_spec(ref, self.ctx.observed.templates, builtin)
        except KeyError as missing:
            return f"analysis template {missing.args[0]} not found"
        except (MissingArgumentsError, ValueError) as error:
            return f"analysis {name} cannot start: {error}"
        owner = OwnerReference.controller_of("Deployment", meta)
        run = AnalysisRun(
            kind="AnalysisRun",
            metadata=ObjectMeta(
                name=name,
                namespace=meta.namespace,
                labels={ANALYSIS_RUN_LABEL: meta.name},
                owner_references=[owner],
            ),
            spec=spec,
        )
        self.step.create_runs.append(run)
        self.event("Normal", "AnalysisRunCreated", f"Started analysis run {name}")
        return None

    def stop_run(self) -> None:
        name = self.status.analysis_run
        if name is not None:
            run = self.run_named(name)
            if run is not None and not run.done and not run.spec.terminate:
                self.step.terminate_runs.append(name)
        self.status.analysis_run = None

    # -- outcome -----------------------------------------------------------------------
    def event(self, type_: str, reason: str, message: str) -> None:
        self.step.events.append((type_, reason, message))

    def requeue(self, seconds: float) -> None:
        seconds = max(seconds, 0.01)
        current = self.step.requeue_after
        self.step.requeue_after = seconds if current is None else min(current, seconds)

    def state(self, phase: RolloutPhase, message: str, condition: Condition | None = None) -> None:
        self.status.phase = phase
        self.status.message = message
        if condition is not None:
            self.step.condition = condition

    def hold_if_paused(self) -> bool:
        """`spec.paused` (`shoal rollout pause`): nothing advances, actions still apply."""
        if not self.deployment.spec.paused:
            return False
        self.state(
            "Paused",
            "paused by `shoal rollout pause`; `shoal rollout resume` continues",
            progressing("Unknown", "DeploymentPaused", "Deployment is paused"),
        )
        return True

    def finish(self) -> RolloutStep:
        self._scale_down_others()
        self.step.rollout = self.status
        return self.step


def held_sizes(ctx: RolloutContext, ongoing: Callable[[RolloutStatus], int]) -> dict[str, int]:
    """A strategy's `scale` (spec.replicas changed, or the Deployment is paused; nothing
    advances): the stable version at `replicas`, an ongoing (not aborted) new version at
    `ongoing(status)`; before any rollout status, only the new ReplicaSet, at `replicas`."""
    status = ctx.deployment.status.rollout
    replicas = ctx.deployment.spec.replicas
    sizes: dict[str, int] = {}
    for rs in ctx.all:
        rs_hash = hash_of(rs)
        wanted: int | None = None
        if status is None:
            wanted = replicas if rs is ctx.new else None
        elif rs_hash == status.stable_hash:
            wanted = replicas
        elif rs_hash == status.new_hash and not status.aborted:
            wanted = ongoing(status)
        if wanted is not None and rs.spec.replicas != wanted:
            sizes[rs.metadata.name] = wanted
    return sizes


# -- what BlueGreen and Canary do alike with a Decision -----------------------------------
# The routing a strategy wants "away from the new version" differs (BlueGreen: the active
# port serves the stable version; Canary: weight 0, no header routes), so it is passed in.


def switch_stable(
    d: Decision, new: ReplicaSet, warm_seconds: float, reason: str, message: str
) -> None:
    """Make `new` the stable version: all traffic to it (confirmed later), the old stable
    version kept warm `warm_seconds` for an instant undo, the rollout's progress cleared."""
    s = d.status
    old, new_hash = s.stable_hash, hash_of(new)
    d.route(stable=new_hash, canary=None, weight=0, header_routes=[])
    d.keep_warm(old, warm_seconds)
    s.previous_stable_hash, s.stable_hash = old, new_hash
    s.warm_until.pop(new_hash, None)
    s.new_hash, s.step_index, s.promote_full = None, None, False
    d.event("Normal", reason, message)


def undo_to_warm(d: Decision, new: ReplicaSet, warm_seconds: float, what: str) -> bool:
    """The new template is a version still kept warm with all its pods available (an undo):
    switch `what` (the traffic) back to it at once, no new process; True when it did."""
    new_hash = hash_of(new)
    replicas = d.deployment.spec.replicas
    if new_hash not in d.status.warm_until or new.status.available_replicas < replicas:
        return False
    switch_stable(
        d,
        new,
        warm_seconds,
        "SwitchedToWarmRevision",
        f"{what} back to warm revision {new_hash} (no new pods)",
    )
    d.status.aborted, d.status.abort_reason = False, None
    return True


def degraded(d: Decision, hint: str = "") -> None:
    """The rollout is aborted: phase Degraded and Progressing=False with the abort reason."""
    reason = d.status.abort_reason or "aborted"
    d.state("Degraded", reason + hint, progressing("False", "RolloutAborted", reason))


def abort(d: Decision, reason: str, revert_to: ReplicaSet | None, **away: Any) -> None:
    """Abort once: route `away` from the new version at once (its pods go when that is
    confirmed: `hold_aborted`), stop the analysis run, Degraded with `reason` and an Event.
    `revert_to` (autoRollback) puts that version's template back into the spec."""
    s = d.status
    if s.aborted:
        return
    s.aborted, s.abort_reason = True, reason
    d.route(**away)
    d.stop_run()
    d.event("Warning", "RolloutAborted", reason)
    degraded(d)
    if revert_to is not None:
        d.step.revert_to = stripped_template(revert_to)
        d.event("Normal", "AutoRollback", f"Reverting the spec to revision {hash_of(revert_to)}")


def hold_aborted(d: Decision, new: ReplicaSet, again: str, **away: Any) -> None:
    """An aborted rollout: traffic stays `away` from the new version, whose pods go once that
    routing is confirmed; Degraded until `shoal rollout retry` starts `again`."""
    if d.route(**away):
        d.scale(new, 0)
    degraded(d, f"; `shoal rollout retry` starts {again} again")
