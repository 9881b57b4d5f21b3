"""Choosing the template to roll back to (pure)."""

from __future__ import annotations

import pytest
from controller_samples import deployment, replica_set

from shoal.api.errors import NotFound
from shoal.controllers.rollback import rollback_template


def test_previous_revision_by_default_and_a_named_one() -> None:
    d = deployment(2, version="v3")
    sets = [
        replica_set(d, replicas=0, revision=1, version="v1"),
        replica_set(d, replicas=0, revision=2, version="v2"),
        replica_set(d, replicas=2, revision=3),
    ]
    assert rollback_template(d, sets, None).spec.command == ["serve", "v2"]
    chosen = rollback_template(d, sets, 1)
    assert chosen.spec.command == ["serve", "v1"]
    assert "pod-template-hash" not in chosen.metadata.labels


def test_unknown_revision_names_the_known_ones() -> None:
    d = deployment(2)
    sets = [replica_set(d, replicas=2, revision=1)]
    with pytest.raises(NotFound, match=r"no revision 7 \(revisions: 1\)"):
        rollback_template(d, sets, 7)
    with pytest.raises(NotFound, match="no previous revision"):
        rollback_template(d, sets, None)


def test_replicasets_of_other_deployments_are_ignored() -> None:
    d = deployment(2, version="v2")
    foreign = replica_set(d, replicas=0, revision=1, version="v1")
    ref = foreign.metadata.owner_references[0]
    foreign.metadata.owner_references = [ref.model_copy(update={"uid": "someone-else"})]
    with pytest.raises(NotFound):
        rollback_template(d, [foreign, replica_set(d, replicas=2, revision=2)], 1)
