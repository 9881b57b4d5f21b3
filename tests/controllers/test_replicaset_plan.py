"""The pure ReplicaSet reconciler: counts, deletion order, availability and status."""

from __future__ import annotations

from datetime import timedelta

from controller_samples import T0, deployment, pod, replica_set

from shoal.api.deployment import POD_TEMPLATE_HASH_LABEL
from shoal.controllers.replicaset_plan import build_pod, plan_inputs, reconcile_replicaset


def rs_of(replicas: int, min_ready: float = 0):  # type: ignore[no-untyped-def]
    rs = replica_set(deployment(replicas), replicas=replicas, available=0)
    rs.spec.min_ready_seconds = min_ready
    return rs


def test_creates_missing_pods_and_reports_status() -> None:
    rs = rs_of(3)
    plan = reconcile_replicaset(rs, [pod("a")], T0)
    assert plan.create == 2 and plan.delete == []
    assert plan.status is not None
    assert (
        plan.status.replicas,
        plan.status.ready_replicas,
        plan.status.available_replicas,
        plan.status.observed_generation,
    ) == (1, 1, 1, 1)


def test_terminating_and_finished_pods_do_not_count() -> None:
    rs = rs_of(2)
    pods = [pod("a"), pod("b", deleting=True), pod("c", phase="Failed", ready=False)]
    plan = reconcile_replicaset(rs, pods, T0)
    assert plan.create == 1
    assert plan.status is not None and plan.status.replicas == 1


def test_scale_down_deletes_in_kubernetes_order() -> None:
    rs = rs_of(1)
    pods = [
        pod("ready-old", created=T0, ready_at=T0),
        pod("ready-young", created=T0 + timedelta(seconds=5), ready_at=T0 + timedelta(seconds=9)),
        pod("running-not-ready", ready=False),
        pod("pending", phase="Pending", ready=False),
        pod("unscheduled", node=None, phase="Pending", ready=False),
        pod("restarting", restarts=4, ready_at=T0),
    ]
    plan = reconcile_replicaset(rs, pods, T0 + timedelta(minutes=1))
    assert [p.metadata.name for p in plan.delete] == [
        "unscheduled",
        "pending",
        "running-not-ready",
        "ready-young",
        "restarting",
    ]


def test_newer_pods_go_before_older_ones() -> None:
    rs = rs_of(1)
    pods = [pod(f"p{i}", created=T0 + timedelta(seconds=i), ready_at=T0) for i in range(3)]
    plan = reconcile_replicaset(rs, pods, T0 + timedelta(minutes=1))
    assert [p.metadata.name for p in plan.delete] == ["p2", "p1"]


def test_min_ready_seconds_delays_availability_and_requeues() -> None:
    rs = rs_of(2, min_ready=10)
    pods = [pod("a", ready_at=T0), pod("b", ready_at=T0 + timedelta(seconds=6))]
    plan = reconcile_replicaset(rs, pods, T0 + timedelta(seconds=8))
    assert plan.status is not None
    assert plan.status.ready_replicas == 2 and plan.status.available_replicas == 0
    assert plan.requeue_after is not None and 1.9 < plan.requeue_after < 2.1
    later = reconcile_replicaset(rs, pods, T0 + timedelta(seconds=17))
    assert later.status is not None and later.status.available_replicas == 2
    assert later.requeue_after is None


def test_no_status_write_when_nothing_changed() -> None:
    rs = rs_of(1)
    rs.status.replicas = rs.status.ready_replicas = rs.status.available_replicas = 1
    rs.status.observed_generation = 1
    plan = reconcile_replicaset(rs, [pod("a")], T0)
    assert plan.create == 0 and plan.delete == [] and plan.status is None


def test_deleted_replicaset_wants_no_pods() -> None:
    rs = rs_of(2)
    rs.metadata.deletion_timestamp = T0
    plan = reconcile_replicaset(rs, [pod("a"), pod("b")], T0)
    assert len(plan.delete) == 2


def test_build_pod_carries_labels_owner_and_hash() -> None:
    rs = rs_of(1)
    built = build_pod(rs, "web-abcde")
    ref = built.metadata.controller_ref()
    assert ref is not None and ref.uid == rs.metadata.uid and ref.kind == "ReplicaSet"
    assert built.metadata.labels["app"] == "web"
    assert (
        built.metadata.labels[POD_TEMPLATE_HASH_LABEL]
        == rs.metadata.labels[POD_TEMPLATE_HASH_LABEL]
    )
    assert built.spec == rs.spec.template.spec


def test_plan_inputs_ignore_a_restart_but_not_readiness_or_deletion() -> None:
    before = pod("a", restarts=1)
    restarted = pod("a", restarts=2)
    not_ready = pod("a", ready=False)
    deleting = pod("a", deleting=True)
    assert plan_inputs(before) == plan_inputs(restarted)
    assert plan_inputs(before) != plan_inputs(not_ready)
    assert plan_inputs(before) != plan_inputs(deleting)
