"""Scenario 7, bad input: hypothesis-generated broken manifests and schemathesis-generated
requests from the server's own /openapi.json.

Promises: no request gets a 5xx; every rejection is a 4xx Status body whose code matches the
answer, and a 422 lists its causes with field paths (`spec.replicas`, `items[1].metadata.name`);
a rejected write stores nothing (the store's revision is unchanged after it). Accepted writes
(a mutation can happen to be valid) are counted, not judged.

Manifests: valid Deployment, Service and Pod documents with one to three mutations each (a
field replaced by a random JSON value, removed, or an unknown field added), plus raw bodies
that are not JSON objects; sent to the kind's create route and, in groups, to /api/v1/apply.
Runs against the bare API server (`python -m shoal.server`): nothing else writes.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from bench.loadgen import free_port
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chaos.harness import Context, Result, deployment, say, service, wait_healthy

TITLE = "bad input: hypothesis manifests + schemathesis /openapi.json"
NAMESPACE = "fuzz"
REVISION_PATH = "/api/v1/namespaces/revision-probe/pods"  # empty: a cheap revision read


def valid_documents() -> dict[str, dict[str, Any]]:
    pod = {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "p"}},
        "spec": deployment("p", 1)["spec"]["template"]["spec"],
    }
    return {"deployments": deployment("d", 2), "services": service("s", 8080), "pods": pod}


finite = st.floats(allow_nan=False, allow_infinity=False)  # httpx cannot encode the others
scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | finite | st.text(max_size=30)
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a document (dict keys and list indexes)."""
    found: list[tuple[Any, ...]] = []
    children = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for key, value in children:
        found.append((*prefix, key))
        found += paths(value, (*prefix, key))
    return found


@st.composite
def broken_manifest(draw: st.DrawFn, plural: str, base: dict[str, Any], index: int) -> Any:
    doc = copy.deepcopy(base)
    doc["metadata"]["name"] = f"fz{index}"
    for _ in range(draw(st.integers(1, 3))):
        targets = [p for p in paths(doc) if p[:2] != ("metadata", "name")]
        if not targets:
            break
        target = draw(st.sampled_from(targets))
        parent: Any = doc
        for key in target[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[target[-1]] = draw(json_values)
        elif action == "remove" and isinstance(parent, dict):
            parent.pop(target[-1], None)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return doc


@dataclass
class Tally:
    sent: int = 0
    accepted: int = 0
    rejected: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(text)


def revision(client: httpx.Client) -> int:
    return int(client.get(REVISION_PATH).json()["metadata"]["resourceVersion"])


def judge(tally: Tally, what: str, answer: tuple[int, bytes], before: int, after: int) -> None:
    status, body = answer
    tally.sent += 1
    if status >= 500:
        tally.problem(f"{what}: {status} {body[:200]!r}")
        return
    if status < 400:
        tally.accepted += 1
        return
    tally.rejected[status] = tally.rejected.get(status, 0) + 1
    if after != before:
        tally.problem(f"{what}: rejected with {status} but the revision moved {before}->{after}")
    try:
        decoded = json.loads(body)
    except ValueError:
        tally.problem(f"{what}: {status} without a JSON Status body: {body[:200]!r}")
        return
    if (
        not isinstance(decoded, dict)
        or decoded.get("kind") != "Status"
        or decoded.get("code") != status
    ):
        tally.problem(f"{what}: {status} body is not a matching Status: {body[:200]!r}")
        return
    if status == 422:
        causes = (decoded.get("details") or {}).get("causes") or []
        if not causes or not all(isinstance(c.get("field"), str) and c["field"] for c in causes):
            tally.problem(f"{what}: 422 without field-path causes: {body[:300]!r}")


def fuzz_manifests(url: str, examples: int, tally: Tally) -> None:
    documents = valid_documents()
    counter = iter(range(10**9))
    with httpx.Client(base_url=url, timeout=10) as client:

        @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(data=st.data())
        def one(data: st.DataObject) -> None:
            index = next(counter)
            plural = data.draw(st.sampled_from(sorted(documents)))
            group = [
                data.draw(broken_manifest(plural, documents[plural], index * 10 + i))
                for i in range(data.draw(st.integers(1, 3)))
            ]
            raw = data.draw(st.sampled_from(["json", "json", "json", "garbage"]))
            if raw == "garbage":
                body = data.draw(st.binary(max_size=40) | st.just(b'{"kind": "Pod", "spec": {'))
            else:
                body = json.dumps(group[0]).encode()
            before = revision(client)
            answer = client.post(f"/api/v1/namespaces/{NAMESPACE}/{plural}", content=body,
                                 headers={"content-type": "application/json"})  # fmt: skip
            judge(tally, f"POST {plural}", (answer.status_code, answer.content), before,
                  revision(client))  # fmt: skip
            before = revision(client)
            answer = client.post("/api/v1/apply", json={"items": group})
            judge(tally, "apply", (answer.status_code, answer.content), before, revision(client))

        one()


def fuzz_openapi(url: str, examples: int, tally: Tally) -> int:
    """schemathesis: every operation of /openapi.json with generated parameters and bodies.
    Watches are asked without `watch=true` (a stream never ends; the watch has its own
    scenario). Returns the number of operations."""
    import schemathesis  # noqa: PLC0415 - heavy; only this scenario needs it
    from schemathesis.core.result import Ok  # noqa: PLC0415

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = []
    for item in schema.get_all_operations():
        if isinstance(item, Ok):
            operations.append(item.ok())
        else:
            tally.problem(f"/openapi.json has an operation schemathesis cannot use: {item.err()}")
    with httpx.Client(base_url=url, timeout=10) as client:
        for operation in operations:

            @settings(max_examples=examples, deadline=None, database=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(case=operation.as_strategy())
            def one(case: Any) -> None:
                if case.query:
                    case.query.pop("watch", None)
                before = revision(client)
                response = case.call(base_url=url, timeout=10)
                what = f"{case.method} {case.formatted_path}"
                judge(
                    tally, what, (response.status_code, response.content), before, revision(client)
                )

            one()
    return len(operations)


async def run(ctx: Context, result: Result) -> None:
    examples, per_operation = (60, 5) if ctx.short else (600, 40)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ctx.bare_api(ctx.dir / "data", port)
    wait_healthy(url, server)
    started = time.monotonic()
    manifests = Tally()
    await asyncio.to_thread(fuzz_manifests, url, examples, manifests)
    say(
        f"manifests: {manifests.sent} requests, {manifests.accepted} accepted, rejected "
        f"{dict(sorted(manifests.rejected.items()))}, problems {len(manifests.problems)}"
    )
    openapi = Tally()
    operations = await asyncio.to_thread(fuzz_openapi, url, per_operation, openapi)
    say(
        f"schemathesis: {operations} operations, {openapi.sent} requests, {openapi.accepted} "
        f"accepted, rejected {dict(sorted(openapi.rejected.items()))}, "
        f"problems {len(openapi.problems)} ({time.monotonic() - started:.0f}s in all)"
    )
    for problem in (manifests.problems + openapi.problems)[:10]:
        say(f"  {problem}")
    server_errors = sum(1 for p in manifests.problems + openapi.problems if ": 5" in p[:60])
    result.check(not manifests.problems, f"{len(manifests.problems)} bad answers to manifests")
    result.check(not openapi.problems, f"{len(openapi.problems)} bad answers to schemathesis")
    result.check(manifests.rejected.get(422, 0) > examples // 3, "too few 422s to judge")
    result.check(server.alive, "the server died")
    result.load = f"{manifests.sent + openapi.sent:,} requests"
    result.failed = f"{server_errors} 5xx"
    result.lost = f"{len(manifests.problems) + len(openapi.problems)} bad answers"
