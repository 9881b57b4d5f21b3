"""`rollout` verbs' pure parts: edits of a Deployment and the revision history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cli_samples import NOW, deployment

from shoal.api.replicaset import ReplicaSet
from shoal.cli.rollout import (
    RESTARTED_AT_ANNOTATION,
    history_rows,
    owned_replicasets,
    pause,
    restart,
    resume,
)


def replicaset(
    name: str, revision: int, owner_uid: str = "d-uid", **annotations: str
) -> ReplicaSet:
    template: dict[str, Any] = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"command": ["sleep", "1"]},
    }
    return ReplicaSet.from_json(
        {
            "apiVersion": "shoal/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "creationTimestamp": (NOW - timedelta(minutes=revision)).isoformat(),
                "annotations": {"deployment.shoal.dev/revision": str(revision), **annotations},
                "ownerReferences": [
                    {"kind": "Deployment", "name": "web", "uid": owner_uid, "controller": True}
                ],
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template,
            },
        }
    )


def test_pause_and_resume_say_when_there_is_nothing_to_do() -> None:
    obj = deployment()
    edit = pause(obj)
    assert (edit.message, edit.changed, obj.spec.paused) == ("deployment/web paused", True, True)
    assert not pause(obj).changed
    assert resume(obj).changed and not obj.spec.paused
    assert resume(obj).message == "deployment/web is not paused"


def test_restart_changes_the_template() -> None:
    obj = deployment()
    edit = restart(obj, now=NOW)
    assert edit.changed
    assert obj.spec.template.metadata.annotations[RESTARTED_AT_ANNOTATION] == NOW.isoformat()


def test_history_lists_owned_revisions_in_order_with_change_cause() -> None:
    sets = [
        replicaset("web-b", 2, **{"kubernetes.io/change-cause": "bump to v2"}),
        replicaset("web-a", 1),
        replicaset("other-x", 7, owner_uid="another-deployment"),
    ]
    owned = owned_replicasets(deployment(), sets)
    assert [rs.metadata.name for rs in owned] == ["web-a", "web-b"]
    assert history_rows(owned, NOW) == [
        ["1", "web-a", "60s", "<none>"],
        ["2", "web-b", "2m", "bump to v2"],
    ]
