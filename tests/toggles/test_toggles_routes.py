"""The evaluate endpoints, in process (ASGI transport, in-memory store): the shared vectors give
the same answers as the engine; toggles get generic CRUD; bad input gets field paths."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal.server.app import create_app
from shoal.server.toggles_routes import toggles_router
from shoal.store.memory import MemoryStore

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text())
NS = "vectors"


def toggle_doc(name: str, spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "FeatureToggle",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(MemoryStore(), extra_routers=[toggles_router()])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for toggle in VECTORS["toggles"]:
            created = await client.post(
                f"/api/v1/namespaces/{NS}/featuretoggles",
                json=toggle_doc(toggle["name"], toggle["spec"]),
            )
            assert created.status_code == 201, created.text
        yield client


async def test_vectors_through_the_namespace_endpoint(api: httpx.AsyncClient) -> None:
    for case in VECTORS["cases"]:
        answer = await api.post(
            f"/api/v1/namespaces/{NS}/toggles/evaluate", json={"context": case["context"]}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["kind"] == "ToggleEvaluation"
        got = body["toggles"][case["toggle"]]
        expect = case["expect"]
        assert {k: got[k] for k in expect} == expect, case


async def test_vectors_through_the_single_toggle_endpoint(api: httpx.AsyncClient) -> None:
    for case in VECTORS["cases"]:
        answer = await api.post(
            f"/api/v1/namespaces/{NS}/toggles/{case['toggle']}/evaluate",
            json={"context": case["context"]},
        )
        got = answer.json()
        assert {k: got[k] for k in case["expect"]} == case["expect"], case


async def test_browser_endpoint_takes_the_context_from_the_query_and_allows_cors(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.get(
        "/toggles",
        params={"ns": NS, "userId": "user-1", "country": "de"},
        headers={"Origin": "http://shop.example"},
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    toggles = answer.json()["toggles"]
    assert toggles["op-in"]["value"] is True
    assert toggles["rollout-constraint"] == {
        "value": True,
        "variant": None,
        "reason": "rollout",
        "payload": None,
    }
    preflight = await api.options("/toggles")
    assert preflight.status_code == 204
    assert "GET" in preflight.headers["access-control-allow-methods"]


async def test_filter_and_empty_namespace(api: httpx.AsyncClient) -> None:
    answer = await api.post(
        f"/api/v1/namespaces/{NS}/toggles/evaluate",
        json={"context": {}, "toggles": ["everyone", "missing"]},
    )
    assert list(answer.json()["toggles"]) == ["everyone"]
    empty = await api.post("/api/v1/namespaces/nothing-here/toggles/evaluate", json={})
    assert empty.json()["toggles"] == {}


async def test_answers_follow_updates_and_deletes(api: httpx.AsyncClient) -> None:
    path = f"/api/v1/namespaces/{NS}/featuretoggles/everyone"
    url = f"/api/v1/namespaces/{NS}/toggles/everyone/evaluate"
    assert (await api.post(url, json={})).json()["value"] is True
    current = (await api.get(path)).json()
    current["spec"]["enabled"] = False
    assert (await api.put(path, json=current)).status_code == 200
    assert (await api.post(url, json={})).json()["reason"] == "disabled"
    assert (await api.delete(path)).status_code == 200
    missing = await api.post(url, json={})
    assert missing.status_code == 404
    assert missing.json()["kind"] == "Status"


async def test_bad_toggles_are_rejected_with_field_paths(api: httpx.AsyncClient) -> None:
    bad = toggle_doc(
        "bad",
        {
            "rollout": {"percentage": 120},
            "constraints": [{"contextName": "a", "operator": "like", "values": ["x"]}],
            "variants": [{"name": "a", "weight": 10}],
        },
    )
    answer = await api.post(f"/api/v1/namespaces/{NS}/featuretoggles", json=bad)
    assert answer.status_code == 422
    fields = {c["field"] for c in answer.json()["details"]["causes"]}
    assert {"spec.rollout.percentage", "spec.constraints[0].operator", "spec.variants"} <= fields


async def test_bad_evaluate_body_names_the_field(api: httpx.AsyncClient) -> None:
    answer = await api.post(
        f"/api/v1/namespaces/{NS}/toggles/evaluate", json={"context": ["not", "an", "object"]}
    )
    assert answer.status_code == 422
    assert [c["field"] for c in answer.json()["details"]["causes"]] == ["context"]


async def test_openapi_describes_the_kind_and_the_evaluate_routes(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    assert "FeatureToggle" in document["components"]["schemas"]
    assert "/api/v1/namespaces/{namespace}/toggles/evaluate" in document["paths"]
    assert "/toggles" in document["paths"]
