"""The API server over the in-memory store, through httpx's ASGI transport: CRUD, validation
with field paths, status subresource, CAS, generation and finalizers."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httpx
from server_samples import NODE, deployment, pod

from shoal.api import registry
from shoal.api.meta import Resource
from shoal.server.app import create_app
from shoal.store.memory import MemoryStore

PODS = "/api/v1/namespaces/default/pods"
DEPLOYS = "/api/v1/namespaces/default/deployments"


def causes(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert body["kind"] == "Status"
    return {c["field"]: c["message"] for c in body.get("details", {}).get("causes", [])}


async def test_create_get_list_delete(api: httpx.AsyncClient) -> None:
    created = await api.post(PODS, json=pod())
    assert created.status_code == 201
    meta = created.json()["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert meta["namespace"] == "default" and int(meta["resourceVersion"]) > 0
    got = (await api.get(f"{PODS}/web-1")).json()
    assert got == created.json()
    listing = (await api.get(PODS)).json()
    assert listing["kind"] == "PodList" and [i["metadata"]["name"] for i in listing["items"]] == [
        "web-1"
    ]
    assert int(listing["metadata"]["resourceVersion"]) >= int(meta["resourceVersion"])
    assert (await api.delete(f"{PODS}/web-1")).status_code == 200
    missing = await api.get(f"{PODS}/web-1")
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"


async def test_server_owns_system_metadata(api: httpx.AsyncClient) -> None:
    doc = pod()
    doc["metadata"].update(uid="mine", generation=7, resourceVersion="99")
    meta = (await api.post(PODS, json=doc)).json()["metadata"]
    assert meta["uid"] != "mine" and meta["generation"] == 1 and meta["resourceVersion"] != "99"


async def test_namespace_comes_from_url_and_lists_filter(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/v1/namespaces/prod/pods", json=pod("a"))).status_code == 201
    assert (await api.post(PODS, json=pod("b"))).status_code == 201
    prod = (await api.get("/api/v1/namespaces/prod/pods")).json()["items"]
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in prod] == [("prod", "a")]
    everywhere = (await api.get("/api/v1/pods")).json()["items"]
    assert sorted(p["metadata"]["name"] for p in everywhere) == ["a", "b"]


async def test_label_selector_filters_list(api: httpx.AsyncClient) -> None:
    await api.post(PODS, json=pod("a", app="web", tier="front"))
    await api.post(PODS, json=pod("b", app="db"))
    answer = await api.get(PODS, params={"labelSelector": "app in (web,api),tier!=back"})
    assert [p["metadata"]["name"] for p in answer.json()["items"]] == ["a"]
    bad = await api.get(PODS, params={"labelSelector": "app=(("})
    assert bad.status_code == 400 and bad.json()["kind"] == "Status"


async def test_duplicate_create_is_already_exists(api: httpx.AsyncClient) -> None:
    await api.post(PODS, json=pod())
    again = await api.post(PODS, json=pod())
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"


async def test_cluster_scoped_node(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/nodes", json=NODE)
    assert created.status_code == 201
    assert "namespace" not in created.json()["metadata"]
    assert (await api.get("/api/v1/nodes/n1")).status_code == 200
    with_ns = dict(NODE, metadata={"name": "n2", "namespace": "default"})
    bad = await api.post("/api/v1/nodes", json=with_ns)
    assert bad.status_code == 422 and "metadata.namespace" in causes(bad)


async def test_invalid_deployment_lists_every_field_path(api: httpx.AsyncClient) -> None:
    doc = deployment(replicas=-1, colour="blue")
    doc["spec"]["template"]["spec"]["readinessProbe"]["periodSeconds"] = 0
    answer = await api.post(DEPLOYS, json=doc)
    assert answer.status_code == 422
    body = answer.json()
    assert body["reason"] == "Invalid" and body["code"] == 422
    found = causes(answer)
    assert "spec.replicas" in found
    assert found["spec.colour"] == "unknown field"
    assert "spec.template.spec.readinessProbe.periodSeconds" in found
    assert (await api.get(DEPLOYS)).json()["items"] == []


async def test_missing_selector_and_selector_not_matching_template(
    api: httpx.AsyncClient,
) -> None:
    doc = deployment()
    del doc["spec"]["selector"]
    assert "spec.selector" in causes(await api.post(DEPLOYS, json=doc))
    mismatched = deployment(selector={"matchLabels": {"app": "other"}})
    answer = await api.post(DEPLOYS, json=mismatched)
    assert answer.status_code == 422
    assert any("selector" in f"{field} {msg}" for field, msg in causes(answer).items())


async def test_body_must_match_url(api: httpx.AsyncClient) -> None:
    wrong_kind = await api.post(PODS, json=deployment())
    assert wrong_kind.status_code == 422 and "kind" in causes(wrong_kind)
    wrong_ns = pod()
    wrong_ns["metadata"]["namespace"] = "prod"
    assert "metadata.namespace" in causes(await api.post(PODS, json=wrong_ns))
    await api.post(PODS, json=pod("a"))
    renamed = await api.put(f"{PODS}/a", json=pod("b"))
    assert renamed.status_code == 422 and "metadata.name" in causes(renamed)
    wrong_version = dict(pod(), apiVersion="v1")
    assert "apiVersion" in causes(await api.post(PODS, json=wrong_version))


async def test_malformed_bodies_are_4xx_status(api: httpx.AsyncClient) -> None:
    broken = await api.post(PODS, content=b"{not json", headers={"content-type": "text/json"})
    assert broken.status_code == 400 and broken.json()["reason"] == "BadRequest"
    assert (await api.post(PODS, content=b"")).status_code == 400
    listing = await api.post(PODS, json=[1, 2])
    assert listing.status_code == 422
    bad_param = await api.get(PODS, params={"watch": "perhaps"})
    assert bad_param.status_code == 422 and "watch" in causes(bad_param)
    unknown = await api.get("/api/v1/nothings")
    assert unknown.status_code == 404 and unknown.json()["kind"] == "Status"
    wrong_method = await api.patch(f"{PODS}/x")
    assert wrong_method.status_code == 405 and wrong_method.json()["kind"] == "Status"


async def test_replace_keeps_status_and_cas(api: httpx.AsyncClient) -> None:
    created = (await api.post(PODS, json=pod())).json()
    with_status = dict(created, status={"phase": "Running", "ready": True})
    after_status = (await api.put(f"{PODS}/web-1/status", json=with_status)).json()
    assert after_status["status"]["phase"] == "Running"
    edit = dict(created, status={"phase": "Failed"})  # stale resourceVersion
    stale = await api.put(f"{PODS}/web-1", json=edit)
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    edit["metadata"] = dict(after_status["metadata"], labels={"app": "web", "v": "2"})
    replaced = (await api.put(f"{PODS}/web-1", json=edit)).json()
    assert replaced["status"]["phase"] == "Running"  # PUT ignores status
    assert replaced["metadata"]["labels"]["v"] == "2"


async def test_put_without_resource_version_is_last_write_wins(api: httpx.AsyncClient) -> None:
    created = (await api.post(PODS, json=pod())).json()
    await api.put(f"{PODS}/web-1/status", json=dict(created, status={"phase": "Running"}))
    edit = pod()
    edit["spec"]["args"] = ["8080"]
    answer = await api.put(f"{PODS}/web-1", json=edit)
    assert answer.status_code == 200
    assert answer.json()["spec"]["args"] == ["8080"]
    assert answer.json()["status"]["phase"] == "Running"
    assert answer.json()["metadata"]["uid"] == created["metadata"]["uid"]


async def test_status_put_keeps_spec_and_metadata(api: httpx.AsyncClient) -> None:
    created = (await api.post(DEPLOYS, json=deployment())).json()
    sneaky = dict(created, status={"replicas": 3})
    sneaky["spec"] = dict(created["spec"], replicas=9)
    sneaky["metadata"] = dict(created["metadata"], labels={"hacked": "yes"})
    answer = (await api.put(f"{DEPLOYS}/web/status", json=sneaky)).json()
    assert answer["status"]["replicas"] == 3
    assert answer["spec"]["replicas"] == 3
    assert answer["metadata"]["labels"] == {}
    assert answer["metadata"]["generation"] == 1
    no_status_route = await api.put("/api/v1/namespaces/default/events/e/status", json={})
    assert no_status_route.status_code in (404, 405)


async def test_generation_moves_only_with_spec(api: httpx.AsyncClient) -> None:
    created = (await api.post(DEPLOYS, json=deployment())).json()
    assert created["metadata"]["generation"] == 1
    relabelled = deployment()
    relabelled["metadata"]["labels"] = {"team": "a"}
    assert (await api.put(f"{DEPLOYS}/web", json=relabelled)).json()["metadata"]["generation"] == 1
    current = (await api.get(f"{DEPLOYS}/web")).json()
    await api.put(f"{DEPLOYS}/web/status", json=dict(current, status={"replicas": 1}))
    assert (await api.get(f"{DEPLOYS}/web")).json()["metadata"]["generation"] == 1
    scaled = (await api.put(f"{DEPLOYS}/web", json=deployment(replicas=5))).json()
    assert scaled["metadata"]["generation"] == 2


async def test_finalizers_delay_deletion(api: httpx.AsyncClient) -> None:
    doc = pod()
    doc["metadata"]["finalizers"] = ["shoal.dev/process"]
    await api.post(PODS, json=doc)
    first = (await api.delete(f"{PODS}/web-1")).json()
    assert first["metadata"]["deletionTimestamp"]
    again = (await api.delete(f"{PODS}/web-1")).json()
    assert again["metadata"]["deletionTimestamp"] == first["metadata"]["deletionTimestamp"]
    still = await api.get(f"{PODS}/web-1")
    assert still.status_code == 200
    recreate = await api.post(PODS, json=pod())
    assert recreate.status_code == 409 and recreate.json()["reason"] == "AlreadyExists"
    # A status update keeps finalizers: the object stays.
    await api.put(f"{PODS}/web-1/status", json=dict(still.json(), status={"phase": "Running"}))
    assert (await api.get(f"{PODS}/web-1")).status_code == 200
    released = dict(still.json())
    released["metadata"] = dict(released["metadata"], finalizers=[])
    del released["metadata"]["resourceVersion"]
    assert (await api.put(f"{PODS}/web-1", json=released)).status_code == 200
    assert (await api.get(f"{PODS}/web-1")).status_code == 404


async def test_force_delete_ignores_finalizers(api: httpx.AsyncClient) -> None:
    doc = pod()
    doc["metadata"]["finalizers"] = ["shoal.dev/process"]
    await api.post(PODS, json=doc)
    assert (await api.delete(f"{PODS}/web-1", params={"force": "true"})).status_code == 200
    assert (await api.get(f"{PODS}/web-1")).status_code == 404


async def test_health_version_metrics_openapi(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).text == "ok"
    assert (await api.get("/version")).json()["apiVersion"] == "shoal/v1"
    await api.get(PODS)
    metrics = (await api.get("/metrics")).text
    assert (
        'shoal_api_requests_total{code="200",method="GET",route="/api/v1/namespaces/{namespace}/pods"}'
        in metrics
    )
    schema: dict[str, Any] = (await api.get("/openapi.json")).json()
    assert "/api/v1/namespaces/{namespace}/deployments/{name}/status" in schema["paths"]
    assert "Deployment" in schema["components"]["schemas"]
    post = schema["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Pod")


async def test_unexpected_errors_are_status_500_without_traceback(store: MemoryStore) -> None:
    class Broken(MemoryStore):
        async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
            raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=create_app(Broken()), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get(f"{PODS}/x")
    assert answer.status_code == 500
    assert answer.json()["kind"] == "Status" and "secret" not in answer.text


async def test_kinds_registered_later_get_routes(store: MemoryStore) -> None:
    class Widget(Resource):
        KIND: ClassVar[str] = "Widget"
        PLURAL: ClassVar[str] = "widgets"
        HAS_STATUS: ClassVar[bool] = False
        kind: str = "Widget"
        size: int = 1

    registry.register(Widget)
    try:
        app = create_app(store)
    finally:
        registry.KINDS.pop("Widget")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        doc = {"kind": "Widget", "metadata": {"name": "w"}, "size": 3}
        answer = await client.post("/api/v1/namespaces/default/widgets", json=doc)
        assert answer.status_code == 201 and answer.json()["size"] == 3


async def test_concurrent_spec_and_status_writers_both_land(api: httpx.AsyncClient) -> None:
    await api.post(DEPLOYS, json=deployment())
    current = (await api.get(f"{DEPLOYS}/web")).json()
    del current["metadata"]["resourceVersion"]  # last-write-wins: the server retries

    async def scale(replicas: int) -> httpx.Response:
        return await api.put(f"{DEPLOYS}/web", json=deployment(replicas=replicas))

    async def report(ready: int) -> httpx.Response:
        return await api.put(
            f"{DEPLOYS}/web/status", json=dict(current, status={"readyReplicas": ready})
        )

    answers = await asyncio.gather(*(f(n) for n in range(1, 11) for f in (scale, report)))
    assert all(a.status_code == 200 for a in answers)
    final = (await api.get(f"{DEPLOYS}/web")).json()
    assert final["spec"]["replicas"] in range(1, 11)
    assert final["status"]["readyReplicas"] in range(1, 11)
    assert final["metadata"]["generation"] >= 2
