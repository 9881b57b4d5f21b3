"""`describe` text: the metadata and events every object has, and which events are its own."""

from __future__ import annotations

from cli_samples import NOW, deployment, event, pod

from shoal.cli.describe import events_about, render_description


def test_pod_description_and_no_events() -> None:
    obj = pod(
        phase="Running",
        ready=True,
        pid=77,
        restartCount=1,
        lastState={"exitCode": 1, "reason": "Error"},
    )
    text = render_description(obj, [], NOW)
    assert "node-1" in text and "77" in text
    assert "Exit Code:" in text
    assert text.splitlines()[-1].startswith("Events:")
    assert text.splitlines()[-1].endswith("<none>")


def test_events_about_matches_kind_name_and_uid() -> None:
    obj = deployment()
    same = event("A", 10)
    other_kind = event("B", 10, kind="ReplicaSet")
    other_uid = event("C", 10)
    other_uid.involved_object.uid = "someone-else"
    assert events_about(obj, [same, other_kind, other_uid]) == [same]
