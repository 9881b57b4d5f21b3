"""Pure write semantics: system metadata, generation, status isolation, apply decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shoal.server import semantics
from shoal.server.semantics import ApplyAction

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def stored(**extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "shoal/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "u1",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "resourceVersion": "7",
            "labels": {"app": "web"},
            "finalizers": ["f"],
        },
        "spec": {"replicas": 2},
        "status": {"replicas": 2},
    }
    obj.update(extra)
    return obj


def test_prepare_create_replaces_system_fields_and_leaves_input_alone() -> None:
    sent = stored()
    created = semantics.prepare_create(sent, NOW, uid="new")
    assert created["metadata"]["uid"] == "new"
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["creationTimestamp"] == "2026-01-02T03:04:05Z"
    assert "resourceVersion" not in created["metadata"]
    assert sent["metadata"]["uid"] == "u1"  # the input is not changed


def test_replace_keeps_status_and_system_metadata() -> None:
    incoming = stored(spec={"replicas": 2}, status={"replicas": 99})
    incoming["metadata"] = {"name": "web", "uid": "forged", "labels": {"v": "2"}}
    merged = semantics.merge_replace(stored(), incoming)
    assert merged["status"] == {"replicas": 2}
    assert merged["metadata"]["uid"] == "u1"
    assert merged["metadata"]["labels"] == {"v": "2"}
    assert merged["metadata"]["generation"] == 3  # spec unchanged


def test_generation_bumps_only_on_spec_change() -> None:
    assert semantics.next_generation(stored(), {"spec": {"replicas": 2}}) == 3
    assert semantics.next_generation(stored(), {"spec": {"replicas": 5}}) == 4


def test_status_merge_takes_only_status() -> None:
    incoming = stored(spec={"replicas": 9}, status={"replicas": 1})
    merged = semantics.merge_status(stored(), incoming)
    assert merged["spec"] == {"replicas": 2} and merged["status"] == {"replicas": 1}


def test_apply_keeps_finalizers_unless_named() -> None:
    document = stored()
    document["metadata"] = {"name": "web", "namespace": "default", "finalizers": []}
    kept = semantics.merge_apply(stored(), document, explicit_metadata={"name"})
    assert kept["metadata"]["finalizers"] == ["f"]
    dropped = semantics.merge_apply(stored(), document, explicit_metadata={"name", "finalizers"})
    assert dropped["metadata"]["finalizers"] == []


def test_apply_action() -> None:
    assert semantics.apply_action(None, stored()) is ApplyAction.CREATED
    same = stored(status={"replicas": 0})
    same["metadata"] = dict(same["metadata"], uid="other", resourceVersion="1")
    assert semantics.apply_action(stored(), same) is ApplyAction.UNCHANGED
    relabelled = stored()
    relabelled["metadata"] = dict(relabelled["metadata"], labels={"app": "api"})
    assert semantics.apply_action(stored(), relabelled) is ApplyAction.CONFIGURED
    assert semantics.apply_action(stored(), stored(spec={"replicas": 3})) is (
        ApplyAction.CONFIGURED
    )


def test_apply_keeps_system_annotations_the_document_does_not_name() -> None:
    promoted = stored()
    promoted["metadata"] = dict(
        promoted["metadata"],
        annotations={"rollout.shoal.dev/action": "promote 1", "team": "a"},
    )
    manifest = stored()
    manifest["metadata"] = {"name": "web", "labels": {"app": "web"}, "annotations": {"team": "a"}}
    assert semantics.apply_action(promoted, manifest) is ApplyAction.UNCHANGED
    merged = semantics.merge_apply(promoted, manifest, explicit_metadata={"name"})
    assert merged["metadata"]["annotations"] == {
        "rollout.shoal.dev/action": "promote 1",
        "team": "a",
    }
    manifest["metadata"]["annotations"] = {}  # a user annotation removed is a change
    assert semantics.apply_action(promoted, manifest) is ApplyAction.CONFIGURED
    merged = semantics.merge_apply(promoted, manifest, explicit_metadata={"name"})
    assert merged["metadata"]["annotations"] == {"rollout.shoal.dev/action": "promote 1"}
    assert not semantics.is_system_annotation("example.com/shoal.dev")
    assert semantics.is_system_annotation("deployment.shoal.dev/revision")


def test_deletion_rules() -> None:
    marked = semantics.mark_deleted(stored(), NOW)
    assert semantics.is_terminating(marked) and not semantics.should_remove(marked)
    released = dict(marked, metadata=dict(marked["metadata"], finalizers=[]))
    assert semantics.should_remove(released)
    assert not semantics.should_remove(dict(stored(), metadata={"name": "x", "finalizers": []}))
