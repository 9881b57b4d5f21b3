"""The pure Deployment reconciler, driven step by step over a simulated cluster.

`Cluster` applies plans the way the executor and the ReplicaSet controller would: created
ReplicaSets get a uid and creation time, scaled ReplicaSets get pods at once, which become
available when the test says so (old-template pods are available; shrinking removes
unavailable pods first, as the ReplicaSet controller does).
"""

from __future__ import annotations

from datetime import timedelta

from controller_samples import T0, deployment, replica_set

from shoal.api.deployment import REVISION_ANNOTATION, Deployment
from shoal.api.meta import find_condition
from shoal.api.replicaset import ReplicaSet
from shoal.controllers.deployment_plan import DeploymentPlan, reconcile_deployment
from shoal.controllers.revisions import template_hash


class Cluster:
    def __init__(self, d: Deployment, sets: list[ReplicaSet]) -> None:
        self.d = d
        self.sets = {rs.metadata.name: rs for rs in sets}
        self.now = T0 + timedelta(seconds=100)
        self.created = 0
        self.pods: dict[str, int] = {}

    def step(self, *, ready: bool = False) -> DeploymentPlan:
        plan = reconcile_deployment(self.d, list(self.sets.values()), self.pods, self.now)
        if plan.create is not None:
            rs = plan.create
            self.created += 1
            rs.metadata.uid = f"{rs.metadata.name}-uid"
            rs.metadata.creation_timestamp = self.now
            self.sets[rs.metadata.name] = rs
        for rs in plan.updates:
            self.sets[rs.metadata.name] = rs
        for rs in plan.deletes:
            del self.sets[rs.metadata.name]
        self.settle_pods(ready)
        if plan.status is not None:
            self.d = self.d.model_copy(update={"status": plan.status})
        self.now += timedelta(seconds=1)
        return plan

    def settle_pods(self, ready: bool) -> None:
        new_hash = template_hash(self.d.spec.template)
        for rs in self.sets.values():
            is_new = rs.metadata.name.endswith(new_hash)
            spec = rs.spec.replicas
            available = min(rs.status.available_replicas, spec)
            if ready or not is_new:
                available = spec
            rs.status.replicas = spec
            rs.status.available_replicas = rs.status.ready_replicas = available
        self.pods = {name: rs.status.replicas for name, rs in self.sets.items()}

    def run(self, *, ready: bool = False, limit: int = 100) -> None:
        for _ in range(limit):
            plan = self.step(ready=ready)
            if plan.create is None and not plan.updates and not plan.deletes:
                return
        raise AssertionError("did not settle")

    def sizes(self) -> dict[str, int]:
        return {name: rs.spec.replicas for name, rs in self.sets.items()}

    def by_version(self) -> tuple[int, int]:
        new_hash = template_hash(self.d.spec.template)
        new = sum(rs.spec.replicas for n, rs in self.sets.items() if n.endswith(new_hash))
        return sum(self.sizes().values()) - new, new

    def change(self, **fields: object) -> None:
        spec = self.d.spec.model_copy(update=fields)
        generation = (self.d.metadata.generation or 1) + 1
        meta = self.d.metadata.model_copy(update={"generation": generation})
        self.d = self.d.model_copy(update={"spec": spec, "metadata": meta})


def rolled(replicas: int = 10, **kw: object) -> Cluster:
    """A deployment fully on v1, whose template just changed to v2."""
    v1 = deployment(replicas, **kw)  # type: ignore[arg-type]
    old = replica_set(v1, replicas=replicas, revision=1, age=0)
    old.metadata.annotations["deployment.shoal.dev/max-replicas"] = str(replicas)
    return Cluster(deployment(replicas, version="v2", **kw), [old])  # type: ignore[arg-type]


def test_first_apply_creates_one_replicaset_with_every_replica() -> None:
    c = Cluster(deployment(3), [])
    plan = c.step()
    assert plan.create is not None
    rs = plan.create
    hash_value = template_hash(c.d.spec.template)
    assert rs.metadata.name == f"web-{hash_value}"
    assert rs.spec.replicas == 3
    assert rs.metadata.annotations[REVISION_ANNOTATION] == "1"
    assert rs.metadata.labels["pod-template-hash"] == hash_value
    assert rs.spec.selector.match_labels["pod-template-hash"] == hash_value
    ref = rs.metadata.controller_ref()
    assert ref is not None and ref.uid == "deploy-uid"
    assert (
        "Normal",
        "ScalingReplicaSet",
        f"Scaled up replica set web-{hash_value} from 0 to 3",
    ) in plan.events
    assert plan.status is not None
    progressing = find_condition(plan.status.conditions, "Progressing")
    assert progressing is not None and progressing.reason == "NewReplicaSetCreated"


def test_rollout_completes_and_reports_conditions() -> None:
    c = Cluster(deployment(3), [])
    c.run(ready=True)
    c.step(ready=True)
    st = c.d.status
    assert (
        st.replicas,
        st.updated_replicas,
        st.available_replicas,
        st.unavailable_replicas,
        st.current_revision,
        st.observed_generation,
    ) == (3, 3, 3, 0, 1, 1)
    available = find_condition(st.conditions, "Available")
    progressing = find_condition(st.conditions, "Progressing")
    assert available is not None and available.reason == "MinimumReplicasAvailable"
    assert progressing is not None and progressing.reason == "NewReplicaSetAvailable"


def test_proportional_scaling_matches_kubernetes() -> None:
    c = rolled(10, surge=3, unavailable=2)
    c.run(ready=False)
    assert c.by_version() == (8, 5)
    c.change(replicas=30)
    c.run(ready=False)
    assert c.by_version() == (20, 13)


def test_scaling_down_mid_rollout_is_proportional_too() -> None:
    c = rolled(10, surge=3, unavailable=2)
    c.run(ready=False)
    c.change(replicas=5)
    c.run(ready=False)
    # Proportional shrink to 5 + 3 surge = 8 (old 8→5, new 5→3), then the rollout goes on
    # within maxUnavailable 2: old 5→3, new 3→5.
    assert c.by_version() == (3, 5)


def test_rolling_update_moves_all_pods_when_ready() -> None:
    c = rolled(4, surge=1, unavailable=0)
    c.run(ready=True)
    assert c.by_version() == (0, 4)
    assert c.created == 1
    c.step(ready=True)
    progressing = find_condition(c.d.status.conditions, "Progressing")
    assert progressing is not None and progressing.reason == "NewReplicaSetAvailable"
    assert c.d.status.current_revision == 2


def test_recreate_stops_old_pods_before_starting_new() -> None:
    c = rolled(3, strategy="Recreate")
    plan = c.step()
    assert plan.create is None and [rs.spec.replicas for rs in plan.updates] == [0]
    c.pods = {name: 2 for name in c.sets}  # old pods still stopping
    plan = c.step()
    assert plan.create is None
    c.pods = {}
    plan = reconcile_deployment(c.d, list(c.sets.values()), {}, c.now)
    assert plan.create is not None and plan.create.spec.replicas == 3


def test_paused_deployment_scales_but_does_not_roll() -> None:
    c = rolled(4)
    c.change(paused=True)
    plan = c.step()
    assert plan.create is None and plan.updates == []
    assert plan.status is not None
    progressing = find_condition(plan.status.conditions, "Progressing")
    assert progressing is not None and progressing.reason == "DeploymentPaused"
    c.change(replicas=6)
    c.run()
    assert c.by_version() == (6, 0)
    c.change(paused=False)
    c.run(ready=True)
    assert c.by_version() == (0, 6)


def test_progress_deadline_exceeded() -> None:
    c = rolled(2, surge=1, unavailable=0, progressDeadlineSeconds=30)
    c.run(ready=False)
    progressing = find_condition(c.d.status.conditions, "Progressing")
    assert progressing is not None and progressing.status == "True"
    c.now += timedelta(seconds=31)
    plan = c.step()
    assert plan.status is not None
    progressing = find_condition(plan.status.conditions, "Progressing")
    assert progressing is not None
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")
    assert any(reason == "ProgressDeadlineExceeded" for _, reason, _ in plan.events)


def test_requeue_for_the_deadline_while_progressing() -> None:
    c = rolled(2, surge=1, unavailable=0, progressDeadlineSeconds=30)
    c.step()
    plan = c.step()
    assert plan.requeue_after is not None and 0 < plan.requeue_after <= 30


def test_history_limit_deletes_oldest_idle_replicasets() -> None:
    d = deployment(2, revisionHistoryLimit=1)
    sets = [replica_set(d, replicas=0, revision=r, version=f"old{r}", age=r) for r in (1, 2, 3)]
    for rs in sets:
        rs.status.replicas = 0
    sets.append(replica_set(d, replicas=2, revision=4, age=4))
    c = Cluster(d, sets)
    plan = c.step(ready=True)
    assert sorted(rs.metadata.annotations[REVISION_ANNOTATION] for rs in plan.deletes) == ["1", "2"]


def test_rollback_template_becomes_new_with_bumped_revision() -> None:
    d = deployment(2)
    current = replica_set(d, replicas=2, revision=2, version="v2", age=2)
    previous = replica_set(d, replicas=0, revision=1, age=1)  # d's own template (v1)
    c = Cluster(d, [previous, current])
    plan = c.step()
    bumped = [rs for rs in plan.updates if rs.metadata.name == previous.metadata.name]
    assert bumped and bumped[0].metadata.annotations[REVISION_ANNOTATION] == "3"
    assert plan.status is not None
    progressing = find_condition(plan.status.conditions, "Progressing")
    assert progressing is not None and progressing.reason == "FoundNewReplicaSet"


def test_deleted_deployment_only_updates_status() -> None:
    d = deployment(3)
    d.metadata.deletion_timestamp = T0
    plan = reconcile_deployment(d, [], {}, T0)
    assert plan.create is None and plan.updates == [] and plan.deletes == []


def test_resume_marks_progressing_resumed_then_rolls() -> None:
    c = rolled(2, surge=1, unavailable=0)
    c.change(paused=True)
    c.step()
    c.change(paused=False)
    plan = c.step()
    assert plan.status is not None
    progressing = find_condition(plan.status.conditions, "Progressing")
    assert progressing is not None
    assert progressing.reason in ("DeploymentResumed", "NewReplicaSetCreated")
    assert plan.create is not None  # the rollout starts at once


def test_available_condition_follows_max_unavailable() -> None:
    c = rolled(4, surge=0, unavailable=1)
    c.step()  # new ReplicaSet created with 0 replicas (no surge)
    c.step()  # one old pod goes
    c.step()  # the status sees 3 of 4 available: still "minimum availability"
    available = find_condition(c.d.status.conditions, "Available")
    assert c.d.status.available_replicas == 3
    assert available is not None and available.status == "True"
    for rs in c.sets.values():
        rs.status.available_replicas = 0
    plan = reconcile_deployment(c.d, list(c.sets.values()), c.pods, c.now)
    assert plan.status is not None
    available = find_condition(plan.status.conditions, "Available")
    assert available is not None
    assert (available.status, available.reason) == ("False", "MinimumReplicasUnavailable")
