"""Pod logs and resource usage through the API server, proxied to the node agent of each pod.

Mounted by the server composition (`extra_routers=[..., pods_router()]`). The API server keeps
no logs or metrics itself: it finds the pod's node in the store (`spec.nodeName`) and asks that
node's agent API (`Node.status.address` + `agentPort`, see `shoal.agent.http`). That is what
lets `shoal logs` and `shoal top` work for agents on other machines.

    GET /api/v1/namespaces/{ns}/pods/{name}/log     ?follow=&previous=&tailLines=
        text/plain, streamed as it arrives (follow=true keeps it open)
    GET /api/v1/namespaces/{ns}/pods/{name}/usage   PodUsage
    GET /api/v1/namespaces/{ns}/podusage            PodUsageList (?labelSelector=)
    GET /api/v1/podusage                            PodUsageList across namespaces
    GET /api/v1/nodes/{name}/usage                  NodeUsage
    GET /api/v1/nodeusage                           NodeUsageList

A PodUsage carries the agent's figures (`usage`: cpuMillis over `windowSeconds`, cpuSeconds,
memoryBytes, pids, driver) and the pod's own `limits` and `requests` (millicores and bytes), so
a client can show shares without reading the pod. A NodeUsage adds what the scheduler counts:
`allocatable` and `requested` (the sum of its active pods' requests, limits standing in for
missing requests as the scheduler does). Lists carry the nodes that could not be asked in
`errors` ([{"node", "message"}]) rather than failing as a whole.

Errors, as Status bodies: 400 pod not scheduled yet (with the scheduler's reason), 503 node
unknown, node without an agent API, or agent unreachable (naming the address tried); the
agent's own answers (404 no previous run, ...) are passed on unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from shoal.api.errors import ApiError, BadRequest, NotFound, Unavailable
from shoal.api.meta import API_VERSION, find_condition
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.quantity import parse_bytes, parse_cpu_millis
from shoal.controllers.replicaset_plan import is_active
from shoal.scheduler.fit import requests_of
from shoal.server.resources import json_response, parse_label_selector
from shoal.store.base import Store

CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 30.0
TEXT = "text/plain; charset=utf-8"


# -- pure decisions -------------------------------------------------------------------------------
def agent_url(node: Node) -> str | Unavailable:
    """Where a node's agent API answers, or why it cannot be asked."""
    name = node.metadata.name
    if node.status.agent_port is None:
        return Unavailable(
            f"node {name} reports no agent API port (status.agentPort): its agent is older than "
            "this server or has not started"
        )
    return f"http://{node.status.address}:{node.status.agent_port}"


def node_name_of(pod: Pod) -> str | BadRequest:
    """The pod's node, or a 400 that says why it has none (the scheduler's own reason)."""
    if pod.spec.node_name:
        return pod.spec.node_name
    where = f"pod {pod.metadata.namespace}/{pod.metadata.name}"
    condition = find_condition(pod.status.conditions, "PodScheduled")
    why = f": {condition.message}" if condition is not None and condition.message else ""
    return BadRequest(f"{where} is not scheduled to a node yet (Pending{why})")


def _millis(text: str | None) -> int | None:
    return parse_cpu_millis(text) if text else None


def _bytes(text: str | None) -> int | None:
    return parse_bytes(text) if text else None


def pod_usage(pod: Pod, node: str, window: float, figures: dict[str, Any]) -> dict[str, Any]:
    """A PodUsage document from the agent's figures for one pod and the pod's own spec."""
    resources = pod.spec.resources
    return {
        "apiVersion": API_VERSION,
        "kind": "PodUsage",
        "metadata": {
            "name": pod.metadata.name,
            "namespace": pod.metadata.namespace,
            "uid": pod.metadata.uid,
        },
        "node": node,
        "windowSeconds": window,
        "usage": {
            key: figures.get(key)
            for key in ("cpuMillis", "cpuSeconds", "memoryBytes", "pids", "driver")
        },
        "limits": {
            "cpuMillis": _millis(resources.limits.cpu),
            "memoryBytes": _bytes(resources.limits.memory),
            "pids": resources.limits.pids,
        },
        "requests": {
            "cpuMillis": _millis(resources.requests.cpu),
            "memoryBytes": _bytes(resources.requests.memory),
        },
    }


def node_usage(
    node: Node, pods: list[Pod], answer: dict[str, Any] | None, error: str | None
) -> dict[str, Any]:
    """A NodeUsage document: the agent's node figures (None when it could not be asked) and
    what the scheduler counts against the node."""
    active = [pod for pod in pods if is_active(pod)]
    requested = [requests_of(pod) for pod in active]
    allocatable = node.status.allocatable
    usage = None
    if answer is not None:
        usage = {
            key: answer.get(key) for key in ("cpuMillis", "cpus", "memoryBytes", "memoryTotalBytes")
        }
        usage["pods"] = len(answer.get("pods", []))
    return {
        "apiVersion": API_VERSION,
        "kind": "NodeUsage",
        "metadata": {"name": node.metadata.name},
        "windowSeconds": answer.get("windowSeconds") if answer else None,
        "usage": usage,
        "allocatable": {
            "cpuMillis": parse_cpu_millis(allocatable.cpu),
            "memoryBytes": parse_bytes(allocatable.memory),
            "pods": allocatable.pods,
        },
        "requested": {
            "cpuMillis": sum(cpu for cpu, _ in requested),
            "memoryBytes": sum(memory for _, memory in requested),
            "pods": len(active),
        },
        "error": error,
    }


# -- talking to agents ----------------------------------------------------------------------------
class Agents:
    """HTTP to node agents; `transport` is the seam for tests (an in-memory agent app)."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.transport = transport

    def client(self, read_timeout: float | None = READ_TIMEOUT_SECONDS) -> httpx.AsyncClient:
        timeout = httpx.Timeout(CONNECT_TIMEOUT_SECONDS, read=read_timeout)
        return httpx.AsyncClient(timeout=timeout, transport=self.transport)

    @staticmethod
    def unreachable(node: str, url: str, error: Exception) -> Unavailable:
        return Unavailable(
            f"cannot reach the agent of node {node} at {url} ({type(error).__name__}: {error}); "
            "is its `shoal agent` running, and can the server reach that address?"
        )

    async def usage(self, node: Node, namespace: str | None = None) -> dict[str, Any]:
        url = agent_url(node)
        if isinstance(url, ApiError):
            raise url
        params = {"namespace": namespace} if namespace else {}
        async with self.client() as client:
            try:
                response = await client.get(f"{url}/usage", params=params)
            except httpx.TransportError as error:
                raise self.unreachable(node.metadata.name, url, error) from error
        if response.status_code >= 400:
            raise Unavailable(f"the agent of node {node.metadata.name} answered {response.text}")
        answer: dict[str, Any] = response.json()
        return answer


async def _stream(response: httpx.Response, client: httpx.AsyncClient) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TransportError:
        return  # the agent went away mid-stream: the log ends here
    finally:
        await response.aclose()
        await client.aclose()


async def proxy_log(agents: Agents, node: Node, pod: Pod, params: dict[str, str]) -> Response:
    """Open the agent's log answer and relay it chunk by chunk (errors relayed as they are)."""
    url = agent_url(node)
    if isinstance(url, ApiError):
        raise url
    namespace = pod.metadata.namespace or "default"
    path = f"{url}/pods/{namespace}/{pod.metadata.name}/log"
    client = agents.client(None if params.get("follow") == "true" else READ_TIMEOUT_SECONDS)
    try:
        request = client.build_request("GET", path, params={**params, "uid": pod.metadata.uid})
        response = await client.send(request, stream=True)
    except httpx.TransportError as error:
        await client.aclose()
        raise Agents.unreachable(node.metadata.name, url, error) from error
    if response.status_code >= 400:
        body = await response.aread()
        await response.aclose()
        await client.aclose()
        return Response(body, status_code=response.status_code, media_type="application/json")
    return StreamingResponse(_stream(response, client), media_type=TEXT)


# -- routes ---------------------------------------------------------------------------------------
def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _pod(store: Store, namespace: str, name: str) -> Pod:
    return Pod.from_json(await store.get(Pod.KIND, namespace, name))


async def _node_of(store: Store, pod: Pod) -> Node:
    name = node_name_of(pod)
    if isinstance(name, ApiError):
        raise name
    try:
        return Node.from_json(await store.get(Node.KIND, None, name))
    except NotFound:
        message = f"pod {pod.metadata.name} is bound to node {name}, which is not registered"
        raise Unavailable(message) from None


async def _pod_usage_list(
    store: Store, agents: Agents, namespace: str | None, selector: str | None
) -> dict[str, Any]:
    listed = await store.list(Pod.KIND, namespace, parse_label_selector(selector))
    pods = [Pod.from_json(doc) for doc in listed.items]
    by_node: dict[str, dict[str, Pod]] = {}
    for pod in pods:
        if pod.spec.node_name and pod.metadata.uid:
            by_node.setdefault(pod.spec.node_name, {})[pod.metadata.uid] = pod
    nodes = {
        node.metadata.name: node
        for node in map(Node.from_json, (await store.list(Node.KIND)).items)
    }
    items: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []

    async def ask(name: str, wanted: dict[str, Pod]) -> None:
        node = nodes.get(name)
        try:
            if node is None:
                raise Unavailable(f"node {name} is not registered")
            answer = await agents.usage(node, namespace)
        except ApiError as error:
            errors.append({"node": name, "message": error.message})
            return
        window = answer.get("windowSeconds", 0.0)
        for figures in answer.get("pods", []):
            pod = wanted.get(str(figures.get("uid")))
            if pod is not None:
                items.append(pod_usage(pod, name, window, figures))

    await asyncio.gather(*(ask(name, wanted) for name, wanted in sorted(by_node.items())))
    items.sort(key=lambda item: (item["metadata"]["namespace"], item["metadata"]["name"]))
    return {"apiVersion": API_VERSION, "kind": "PodUsageList", "items": items, "errors": errors}


async def _node_usage_list(store: Store, agents: Agents, only: str | None) -> list[dict[str, Any]]:
    nodes = [Node.from_json(doc) for doc in (await store.list(Node.KIND)).items]
    if only is not None:
        nodes = [node for node in nodes if node.metadata.name == only]
        if not nodes:
            raise NotFound(f'nodes "{only}" not found')
    pods = [Pod.from_json(doc) for doc in (await store.list(Pod.KIND)).items]

    async def ask(node: Node) -> dict[str, Any]:
        bound = [pod for pod in pods if pod.spec.node_name == node.metadata.name]
        try:
            return node_usage(node, bound, await agents.usage(node), None)
        except ApiError as error:
            return node_usage(node, bound, None, error.message)

    nodes.sort(key=lambda node: node.metadata.name)
    return list(await asyncio.gather(*(ask(node) for node in nodes)))


def pods_router(transport: httpx.AsyncBaseTransport | None = None) -> APIRouter:
    """The log and usage routes; `transport` replaces the network to the agents in tests."""
    router = APIRouter(tags=["pods"])
    agents = Agents(transport)

    @router.get(
        "/api/v1/namespaces/{namespace}/pods/{name}/log",
        summary="A pod's output, from its node's agent (streams with follow=true)",
    )
    async def pod_log(
        request: Request,
        namespace: str,
        name: str,
        *,
        follow: bool = False,
        previous: bool = False,
        tail: int | None = Query(None, alias="tailLines", ge=0),
    ) -> Response:
        store = _store(request)
        pod = await _pod(store, namespace, name)
        node = await _node_of(store, pod)
        params = {"follow": str(follow).lower(), "previous": str(previous).lower()}
        if tail is not None:
            params["tailLines"] = str(tail)
        return await proxy_log(agents, node, pod, params)

    @router.get(
        "/api/v1/namespaces/{namespace}/pods/{name}/usage",
        summary="A pod's CPU, memory and pids, from its node's agent",
    )
    async def one_pod_usage(request: Request, namespace: str, name: str) -> Response:
        store = _store(request)
        pod = await _pod(store, namespace, name)
        node = await _node_of(store, pod)
        answer = await agents.usage(node, namespace)
        for figures in answer.get("pods", []):
            if figures.get("uid") == pod.metadata.uid:
                window = answer.get("windowSeconds", 0.0)
                return json_response(pod_usage(pod, node.metadata.name, window, figures))
        where = f"node {node.metadata.name}"
        raise NotFound(f"pod {namespace}/{name} has no running process on {where}")

    @router.get(
        "/api/v1/namespaces/{namespace}/podusage", summary="Usage of a namespace's running pods"
    )
    async def namespace_pod_usage(
        request: Request,
        namespace: str,
        label_selector: str | None = Query(None, alias="labelSelector"),
    ) -> Response:
        answer = await _pod_usage_list(_store(request), agents, namespace, label_selector)
        return json_response(answer)

    @router.get("/api/v1/podusage", summary="Usage of every running pod")
    async def all_pod_usage(
        request: Request, label_selector: str | None = Query(None, alias="labelSelector")
    ) -> Response:
        return json_response(await _pod_usage_list(_store(request), agents, None, label_selector))

    @router.get("/api/v1/nodes/{name}/usage", summary="A node's usage and what is requested of it")
    async def one_node_usage(request: Request, name: str) -> Response:
        return json_response((await _node_usage_list(_store(request), agents, name))[0])

    @router.get("/api/v1/nodeusage", summary="Every node's usage and requests")
    async def all_node_usage(request: Request) -> Response:
        items = await _node_usage_list(_store(request), agents, None)
        return json_response({"apiVersion": API_VERSION, "kind": "NodeUsageList", "items": items})

    return router


__all__ = ["Agents", "agent_url", "node_name_of", "node_usage", "pod_usage", "pods_router"]
