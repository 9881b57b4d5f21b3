"""Rollback: put an earlier revision's pod template back into a Deployment's spec.

`rollback_deployment(client, namespace, name, to_revision=None)` is what `shoal rollout undo`
calls. The choice is pure (`rollback_template`): revision N's ReplicaSet, or with no N the
newest revision older than the current one. Writing the template back is an ordinary spec
update (compare-and-set, retried on Conflict); the deployment controller then finds that old
ReplicaSet as the new one, bumps its revision and rolls to it with the deployment's strategy.
"""

from __future__ import annotations

from shoal.api.deployment import POD_TEMPLATE_HASH_LABEL, Deployment
from shoal.api.errors import Conflict, NotFound
from shoal.api.pod import PodTemplateSpec
from shoal.api.replicaset import ReplicaSet
from shoal.client import AsyncClient
from shoal.controllers.revisions import find_new
from shoal.controllers.strategies.base import revision_of
from shoal.events import EventRecorder


def rollback_template(
    deployment: Deployment, sets: list[ReplicaSet], to_revision: int | None
) -> PodTemplateSpec:
    """The template to roll back to. Raises NotFound naming the revisions that exist."""
    owned = [
        rs
        for rs in sets
        if (ref := rs.metadata.controller_ref()) is not None and ref.uid == deployment.metadata.uid
    ]
    revisions = sorted({revision_of(rs) for rs in owned if revision_of(rs) > 0})
    known = ", ".join(map(str, revisions)) or "none"
    if to_revision is None:
        current = find_new(deployment, owned)
        current_revision = (
            revision_of(current) if current is not None else max(revisions, default=0)
        )
        older = [r for r in revisions if r < current_revision]
        if not older:
            raise NotFound(
                f"deployment {deployment.metadata.name} has no previous revision "
                f"to roll back to (revisions: {known})"
            )
        to_revision = older[-1]
    target = next((rs for rs in owned if revision_of(rs) == to_revision), None)
    if target is None:
        raise NotFound(
            f"deployment {deployment.metadata.name} has no revision {to_revision} "
            f"(revisions: {known})"
        )
    template = target.spec.template.model_copy(deep=True)
    template.metadata.labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return template


async def rollback_deployment(
    client: AsyncClient, namespace: str, name: str, to_revision: int | None = None
) -> Deployment:
    """Roll `namespace/name` back to `to_revision` (default: the previous one).

    Returns the updated Deployment (unchanged if it already runs that template).
    """
    for _ in range(5):
        deployment = await client.get(Deployment, name, namespace)
        sets = (await client.list(ReplicaSet, namespace)).items
        template = rollback_template(deployment, sets, to_revision)
        if template.to_json() == deployment.spec.template.to_json():
            return deployment
        changed = deployment.model_copy(deep=True)
        changed.spec.template = template
        try:
            updated = await client.update(changed)
        except Conflict:
            continue
        recorder = EventRecorder(client, "deployment-controller")
        target = f"revision {to_revision}" if to_revision is not None else "the previous revision"
        recorder.record(updated, "Normal", "DeploymentRollback", f"Rolled back to {target}")
        await recorder.close()
        return updated
    raise Conflict(f"deployment {namespace}/{name} kept changing; rollback not applied")
