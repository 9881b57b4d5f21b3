"""Template hashes, revisions and the ReplicaSets a Deployment makes. Pure.

The pod-template-hash is a stable hash of the Deployment's pod template (canonical JSON,
sha256, encoded with Kubernetes' vowel-free alphabet so it never spells a word). It names the
ReplicaSet (`<deployment>-<hash>`) and labels the ReplicaSet, its selector and its pods, so
that two revisions never select each other's pods.

Used by `deployment_plan` (which ReplicaSet is new, what to create) and `rollback`.
"""

from __future__ import annotations

import hashlib
import json

from shoal.api.deployment import POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, Deployment
from shoal.api.meta import ObjectMeta, OwnerReference
from shoal.api.pod import PodTemplateSpec
from shoal.api.replicaset import ReplicaSet, ReplicaSetSpec
from shoal.controllers.strategies.base import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    revision_of,
)

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
HASH_LENGTH = 10


def template_hash(template: PodTemplateSpec) -> str:
    """A stable, short, label-safe hash of a pod template (ignoring any hash label)."""
    canonical = _without_hash(template).to_json()
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(HASH_LENGTH):
        number, index = divmod(number, len(_SAFE_ALPHABET))
        chars.append(_SAFE_ALPHABET[index])
    return "".join(chars)


def _without_hash(template: PodTemplateSpec) -> PodTemplateSpec:
    labels = {k: v for k, v in template.metadata.labels.items() if k != POD_TEMPLATE_HASH_LABEL}
    meta = template.metadata.model_copy(update={"labels": labels})
    return template.model_copy(update={"metadata": meta})


def same_template(a: PodTemplateSpec, b: PodTemplateSpec) -> bool:
    """Equal templates, ignoring the pod-template-hash label (how the new RS is found)."""
    return _without_hash(a).to_json() == _without_hash(b).to_json()


def find_new(deployment: Deployment, sets: list[ReplicaSet]) -> ReplicaSet | None:
    """The ReplicaSet running the Deployment's current template (oldest if several)."""
    matching = [rs for rs in sets if same_template(rs.spec.template, deployment.spec.template)]
    if not matching:
        return None
    matching.sort(
        key=lambda rs: (
            rs.metadata.creation_timestamp is None,
            rs.metadata.creation_timestamp,
            rs.metadata.name,
        )
    )
    return matching[0]


def max_revision(sets: list[ReplicaSet]) -> int:
    return max((revision_of(rs) for rs in sets), default=0)


def replica_annotations(deployment: Deployment, surge: int) -> dict[str, str]:
    """The annotations proportional scaling reads back: desired and maximum replicas."""
    wanted = deployment.spec.replicas
    return {DESIRED_REPLICAS_ANNOTATION: str(wanted), MAX_REPLICAS_ANNOTATION: str(wanted + surge)}


def build_replica_set(
    deployment: Deployment, revision: int, replicas: int, surge: int
) -> ReplicaSet:
    """The new ReplicaSet for the Deployment's current template."""
    hash_value = template_hash(deployment.spec.template)
    template = deployment.spec.template.model_copy(deep=True)
    template.metadata.labels[POD_TEMPLATE_HASH_LABEL] = hash_value
    selector = deployment.spec.selector.model_copy(deep=True)
    selector.match_labels[POD_TEMPLATE_HASH_LABEL] = hash_value
    meta = deployment.metadata
    annotations = {
        **{k: v for k, v in meta.annotations.items() if not k.startswith("kubectl.")},
        REVISION_ANNOTATION: str(revision),
        **replica_annotations(deployment, surge),
    }
    owner = OwnerReference.controller_of("Deployment", meta)
    return ReplicaSet(
        kind="ReplicaSet",
        metadata=ObjectMeta(
            name=f"{meta.name}-{hash_value}"[:253],
            namespace=meta.namespace,
            labels=dict(template.metadata.labels),
            annotations=annotations,
            owner_references=[owner],
        ),
        spec=ReplicaSetSpec(
            replicas=replicas,
            selector=selector,
            template=template,
            min_ready_seconds=deployment.spec.min_ready_seconds,
        ),
    )
