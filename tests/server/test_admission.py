"""Cross-object checks at write time: a rollout's analysis must name AnalysisTemplates that
exist (in the store or earlier in the batch) and give their required arguments; bad
strategies are rejected with field paths before anything is stored."""

from __future__ import annotations

from typing import Any

import httpx

APPLY = "/api/v1/apply"


def template(name: str, args: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": args or [],
            "metrics": [
                {
                    "name": "rate",
                    "successCondition": "result >= 0.99",
                    "provider": {"envoy": {"metric": "successRate"}},
                }
            ],
        },
    }


def canary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"command": ["x"]}},
            "strategy": {"type": "Canary", "canary": {"steps": steps}},
        },
    }


def analysis(name: str, **more: Any) -> dict[str, Any]:
    return {"analysis": {"templates": [{"templateName": name}], **more}}


def causes(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 422, answer.text
    return {c["field"]: c["message"] for c in answer.json()["details"]["causes"]}


async def test_a_missing_template_is_rejected_at_apply_with_its_path(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.post(APPLY, json={"items": [canary([{"setWeight": 10}, analysis("nope")])]})
    found = causes(answer)
    assert (
        "nope" in found["items[0].spec.strategy.canary.steps[1].analysis.templates[0].templateName"]
    )
    assert (await api.get("/api/v1/deployments")).json()["items"] == []


async def test_a_template_earlier_in_the_batch_counts(api: httpx.AsyncClient) -> None:
    answer = await api.post(APPLY, json={"items": [template("rate"), canary([analysis("rate")])]})
    assert answer.status_code == 200, answer.text
    later = await api.post(APPLY, json={"items": [canary([analysis("late")]), template("late")]})
    assert "items[0].spec.strategy.canary.steps[0].analysis.templates[0].templateName" in causes(
        later
    )


async def test_required_args_must_be_given(api: httpx.AsyncClient) -> None:
    await api.post(
        "/api/v1/namespaces/default/analysistemplates",
        json=template("rate", [{"name": "service"}, {"name": "t", "value": "1"}]),
    )
    answer = await api.post(
        "/api/v1/namespaces/default/deployments", json=canary([analysis("rate")])
    )
    assert "service" in causes(answer)["spec.strategy.canary.steps[0].analysis.args"]
    ok = canary([analysis("rate", args=[{"name": "service", "value": "web"}])])
    assert (await api.post("/api/v1/namespaces/default/deployments", json=ok)).status_code == 201
    ok["spec"]["strategy"]["canary"]["steps"].append(analysis("other"))
    replaced = await api.put("/api/v1/namespaces/default/deployments/web", json=ok)
    assert "spec.strategy.canary.steps[1].analysis.templates[0].templateName" in causes(replaced)


async def test_bad_weights_and_steps_after_full_weight(api: httpx.AsyncClient) -> None:
    answer = await api.post(APPLY, json={"items": [canary([{"setWeight": 101}])]})
    assert "items[0].spec.strategy.canary.steps[0].setWeight" in causes(answer)
    answer = await api.post(APPLY, json={"items": [canary([{"setWeight": 100}, {"pause": {}}])]})
    assert "setWeight: 100" in causes(answer)["items[0].spec.strategy.canary.steps[1]"]


async def test_blue_green_analysis_is_checked_too(api: httpx.AsyncClient) -> None:
    doc = canary([])
    doc["spec"]["strategy"] = {
        "type": "BlueGreen",
        "blueGreen": {"prePromotionAnalysis": {"templates": [{"templateName": "smoke"}]}},
    }
    found = causes(await api.post(APPLY, json={"items": [doc]}))
    assert (
        "items[0].spec.strategy.blueGreen.prePromotionAnalysis.templates[0].templateName" in found
    )
