"""`diff`: what is compared and how a difference is shown."""

from __future__ import annotations

from cli_samples import deployment_doc

from shoal.cli.diff import comparable, unified_diff


def test_comparable_keeps_what_users_write() -> None:
    doc = deployment_doc()
    doc["metadata"].update(uid="u", resourceVersion="7", annotations={"team": "shop"})
    doc["status"] = {"replicas": 3}
    view = comparable(doc)
    assert view["metadata"] == {"labels": {"app": "web"}, "annotations": {"team": "shop"}}
    assert "status" not in view and "kind" not in view
    assert view["spec"]["replicas"] == 3


def test_unified_diff() -> None:
    live, applied = deployment_doc(replicas=3), deployment_doc(replicas=5)
    lines = unified_diff("deployment/web", live, applied)
    assert lines[0] == "--- live/deployment/web"
    assert lines[1] == "+++ applied/deployment/web"
    assert "-  replicas: 3" in lines and "+  replicas: 5" in lines
    assert unified_diff("deployment/web", live, deployment_doc(replicas=3)) == []
    created = unified_diff("deployment/web", None, applied)
    assert all(not line.startswith("-") for line in created[2:])
    assert "+  replicas: 5" in created
