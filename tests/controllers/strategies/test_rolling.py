"""RollingUpdate arithmetic and its promises, by example and by property (hypothesis)."""

from __future__ import annotations

import pytest
from controller_samples import (
    T0,
    deployment,
    replica_set,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.api.replicaset import ReplicaSet
from shoal.controllers.revisions import template_hash
from shoal.controllers.strategies.base import RolloutContext
from shoal.controllers.strategies.rolling import (
    fenceposts,
    max_surge,
    max_unavailable,
    rollout,
    scale_down_old,
)


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable rounds down
        ("25%", "25%", 1, (1, 0)),
        (0, 0, 5, (0, 1)),  # never both zero
        ("0%", "0%", 5, (0, 1)),
        (2, "50%", 5, (2, 2)),
        ("100%", 0, 3, (3, 0)),
    ],
)
def test_fenceposts(
    surge: int | str, unavailable: int | str, replicas: int, expected: tuple[int, int]
) -> None:
    assert fenceposts(surge, unavailable, replicas) == expected


def test_max_unavailable_is_capped_by_replicas() -> None:
    assert max_unavailable(deployment(2, unavailable=5)) == 2
    assert max_unavailable(deployment(0, unavailable=5)) == 0
    assert max_surge(deployment(10, surge="30%")) == 3


def test_unhealthy_old_pods_are_removed_first() -> None:
    d = deployment(4, version="v2", surge=0, unavailable=1)
    old = replica_set(d, replicas=4, available=2, version="v1")
    new = replica_set(d, replicas=0, available=0, revision=2)
    # budget: 4 - 3 - 0 = 1 even though only 2 are available: the 2 unhealthy cost nothing,
    # but the budget still caps the step.
    assert scale_down_old(d, new, [old]) == {old.metadata.name: 3}


def test_oldest_replicaset_shrinks_first() -> None:
    d = deployment(4, version="v3", surge=0, unavailable=2)
    oldest = replica_set(d, replicas=2, version="v1", age=0)
    older = replica_set(d, replicas=2, version="v2", age=1, revision=2)
    new = replica_set(d, replicas=0, revision=3, age=2)
    assert scale_down_old(d, new, [older, oldest]) == {oldest.metadata.name: 0}


def _apply(sets: dict[str, ReplicaSet], scales: dict[str, int]) -> None:
    for name, size in scales.items():
        rs = sets[name]
        rs.spec.replicas = size
        rs.status.replicas = size
        # Shrinking removes unavailable pods first (the ReplicaSet controller's order);
        # growing adds pods that are not available yet.
        rs.status.available_replicas = min(rs.status.available_replicas, size)
        rs.status.ready_replicas = rs.status.available_replicas


settings_int_or_percent = st.one_of(
    st.integers(0, 6), st.sampled_from(["0%", "10%", "25%", "50%", "100%"])
)


@settings(max_examples=300, deadline=None)
@given(
    replicas=st.integers(1, 25),
    surge=settings_int_or_percent,
    unavailable=settings_int_or_percent,
    old_sets=st.integers(1, 3),
    data=st.data(),
)
def test_rolling_never_breaks_surge_or_unavailable_and_converges(
    replicas: int, surge: int | str, unavailable: int | str, old_sets: int, data: st.DataObject
) -> None:
    if surge in (0, "0%") and unavailable in (0, "0%"):
        unavailable = 1
    d = deployment(replicas, version="new", surge=surge, unavailable=unavailable)
    sizes = [replicas // old_sets] * old_sets
    sizes[0] += replicas - sum(sizes)
    sets = {}
    for i, size in enumerate(sizes):
        rs = replica_set(d, replicas=size, version=f"old{i}", age=i, revision=i + 1)
        sets[rs.metadata.name] = rs
    max_total = replicas + max_surge(d)
    min_available = replicas - max_unavailable(d)
    new_name = ""
    for iteration in range(200):
        everything_ready = iteration > 100
        new = sets.get(new_name)
        old = [rs for name, rs in sets.items() if name != new_name]
        step = rollout(RolloutContext(d, new, old, 0, T0))
        available_before = sum(rs.status.available_replicas for rs in sets.values())
        if step.create_new is not None:
            new = replica_set(d, replicas=0, available=0, age=10, revision=9)
            assert new.metadata.name.endswith(template_hash(d.spec.template))
            new_name = new.metadata.name
            sets[new_name] = new
            step.scales[new_name] = step.create_new
        shrinking = any(size < sets[name].spec.replicas for name, size in step.scales.items())
        _apply(sets, step.scales)
        total = sum(rs.spec.replicas for rs in sets.values())
        assert total <= max(max_total, replicas)
        available_after = sum(rs.status.available_replicas for rs in sets.values())
        if shrinking and available_before >= min_available:
            assert available_after >= min_available
        # Some (or, late, all) new pods become available.
        new_rs = sets.get(new_name)
        if new_rs is not None:
            missing = new_rs.spec.replicas - new_rs.status.available_replicas
            gained = missing if everything_ready else data.draw(st.integers(0, missing))
            new_rs.status.available_replicas += gained
            new_rs.status.ready_replicas = new_rs.status.available_replicas
        done = (
            new_rs is not None
            and new_rs.status.available_replicas == replicas
            and all(rs.spec.replicas == 0 for name, rs in sets.items() if name != new_name)
        )
        if step.is_empty() and done:
            break
    else:
        raise AssertionError(f"did not converge: {[rs.spec.replicas for rs in sets.values()]}")
    assert sets[new_name].status.available_replicas == replicas
