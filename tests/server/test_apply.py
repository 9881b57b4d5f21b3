"""POST /api/v1/apply: validate every document first, then create-or-update by name."""

from __future__ import annotations

import httpx
from server_samples import NODE, deployment, pod

APPLY = "/api/v1/apply"


async def test_one_invalid_document_of_three_stores_nothing(api: httpx.AsyncClient) -> None:
    bad = deployment("broken", replicas=-2)
    answer = await api.post(APPLY, json={"items": [pod("a"), bad, deployment("ok")]})
    assert answer.status_code == 422
    fields = [c["field"] for c in answer.json()["details"]["causes"]]
    assert fields == ["items[1].spec.replicas"]
    assert (await api.get("/api/v1/pods")).json()["items"] == []
    assert (await api.get("/api/v1/deployments")).json()["items"] == []


async def test_unknown_kind_is_a_cause(api: httpx.AsyncClient) -> None:
    answer = await api.post(APPLY, json={"items": [{"kind": "Gadget", "metadata": {}}]})
    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "items[0].kind"
    assert (await api.post(APPLY, json={"things": []})).status_code == 422


async def test_created_unchanged_configured(api: httpx.AsyncClient) -> None:
    docs = [deployment(), NODE]
    first = (await api.post(APPLY, json={"items": docs})).json()
    assert [i["action"] for i in first["items"]] == ["created", "created"]
    assert first["items"][1]["namespace"] is None
    again = (await api.post(APPLY, json={"items": docs})).json()
    assert [i["action"] for i in again["items"]] == ["unchanged", "unchanged"]
    scaled = (await api.post(APPLY, json={"items": [deployment(replicas=4)]})).json()
    item = scaled["items"][0]
    assert item["action"] == "configured"
    assert item["object"]["spec"]["replicas"] == 4
    assert item["object"]["metadata"]["generation"] == 2
    assert item["object"]["metadata"]["uid"] == first["items"][0]["object"]["metadata"]["uid"]


async def test_apply_keeps_status_and_finalizers(api: httpx.AsyncClient) -> None:
    created = (await api.post(APPLY, json={"items": [pod()]})).json()["items"][0]["object"]
    created["metadata"]["finalizers"] = ["shoal.dev/process"]
    await api.put("/api/v1/namespaces/default/pods/web-1", json=created)
    current = (await api.get("/api/v1/namespaces/default/pods/web-1")).json()
    await api.put(
        "/api/v1/namespaces/default/pods/web-1/status",
        json=dict(current, status={"phase": "Running"}),
    )
    relabelled = pod()
    relabelled["metadata"]["labels"]["v"] = "2"
    item = (await api.post(APPLY, json={"items": [relabelled]})).json()["items"][0]
    assert item["action"] == "configured"
    assert item["object"]["status"]["phase"] == "Running"
    assert item["object"]["metadata"]["finalizers"] == ["shoal.dev/process"]


async def test_dry_run_stores_nothing(api: httpx.AsyncClient) -> None:
    answer = await api.post(APPLY, params={"dryRun": "true"}, json={"items": [deployment()]})
    assert answer.status_code == 200
    assert answer.json()["items"][0]["action"] == "created"
    assert (await api.get("/api/v1/deployments")).json()["items"] == []
    await api.post(APPLY, json={"items": [deployment()]})
    preview = await api.post(
        APPLY, params={"dryRun": "true"}, json={"items": [deployment(replicas=7)]}
    )
    assert preview.json()["items"][0]["action"] == "configured"
    stored = (await api.get("/api/v1/namespaces/default/deployments/web")).json()
    assert stored["spec"]["replicas"] == 3
