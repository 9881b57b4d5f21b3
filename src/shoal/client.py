"""Typed client of the shoal HTTP API: the only way controllers, the agent, the CLI and SDKs
talk to the server.

`AsyncClient` and `Client` (sync) have the same methods. Both are thin: every call is
described once by `_Calls` (method, path, parameters, body, how to decode the answer) and
each client only sends it with its own httpx client. Error answers are raised as the typed
errors of `shoal.api.errors`, rebuilt from the Status body; an unreachable server raises
`Unavailable`.

`watch()` yields `TypedEvent`s. BOOKMARK lines only advance `revision`; an expired revision
(HTTP 410 or an ERROR line) raises `Gone`, and the caller re-lists and watches from the
list's revision. `since=0` starts with an ADDED event per existing object. The iterator ends
when the server closes the stream; resuming from the last revision is the caller's choice.
"""

from __future__ import annotations

import asyncio
import functools
import json as jsonlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast

import httpx

from shoal.api.errors import ApiError, Gone, Unavailable, error_from_status
from shoal.api.meta import DEFAULT_NAMESPACE, Resource

R = TypeVar("R", bound=Resource)
T = TypeVar("T")

WatchType = Literal["ADDED", "MODIFIED", "DELETED"]
# Watches get a read timeout well above the server's 5 s bookmark interval: silence that
# long means the connection is dead, not idle.
WATCH_READ_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ObjectList(Generic[R]):
    items: list[R]
    revision: int


@dataclass(frozen=True, slots=True)
class ApplyResult:
    kind: str
    namespace: str | None
    name: str
    action: str  # created | configured | unchanged
    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TypedEvent(Generic[R]):
    type: WatchType
    object: R
    revision: int


_ApplyResults = list[ApplyResult]
_Documents = list[dict[str, Any]]


def collection_path(cls: type[Resource], namespace: str | None) -> str:
    if cls.NAMESPACED and namespace is not None:
        return f"/api/v1/namespaces/{namespace}/{cls.PLURAL}"
    return f"/api/v1/{cls.PLURAL}"


def object_path(cls: type[Resource], name: str, namespace: str | None) -> str:
    ns = (namespace or DEFAULT_NAMESPACE) if cls.NAMESPACED else None
    return f"{collection_path(cls, ns)}/{name}"


def decode_object(cls: type[R], data: dict[str, Any]) -> R:
    """The typed object; cluster-scoped kinds get namespace None (the wire form omits it,
    and the model's default would otherwise say "default")."""
    if not cls.NAMESPACED and isinstance(data.get("metadata"), dict):
        data["metadata"]["namespace"] = None
    return cls.model_validate(data)


def raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text[:500] or f"HTTP {response.status_code}"}
    raise error_from_status(response.status_code, body if isinstance(body, dict) else None)


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    method: str
    path: str
    decode: Callable[[Any], T]
    params: dict[str, str] | None = None
    body: Any = None


def _apply_results(answer: Any) -> _ApplyResults:
    return [
        ApplyResult(
            item["kind"], item.get("namespace"), item["name"], item["action"], item["object"]
        )
        for item in answer["items"]
    ]


class _Calls:
    """Every API call as data: shared by the async and the sync client."""

    @staticmethod
    def create(obj: R) -> _Call[R]:
        cls = type(obj)
        return _Call(
            "POST",
            collection_path(cls, obj.metadata.namespace or DEFAULT_NAMESPACE),
            functools.partial(decode_object, cls),
            body=obj.to_json(),
        )

    @staticmethod
    def get(kind: type[R], name: str, namespace: str | None) -> _Call[R]:
        return _Call(
            "GET", object_path(kind, name, namespace), functools.partial(decode_object, kind)
        )

    @staticmethod
    def list(kind: type[R], namespace: str | None, selector: str | None) -> _Call[ObjectList[R]]:
        def decode(answer: Any) -> ObjectList[R]:
            items = [decode_object(kind, item) for item in answer["items"]]
            return ObjectList(items, int(answer["metadata"]["resourceVersion"]))

        params = {"labelSelector": selector} if selector else None
        return _Call("GET", collection_path(kind, namespace), decode, params=params)

    @staticmethod
    def update(obj: R, status: bool = False) -> _Call[R]:
        cls = type(obj)
        path = object_path(cls, obj.metadata.name, obj.metadata.namespace)
        return _Call(
            "PUT",
            path + ("/status" if status else ""),
            functools.partial(decode_object, cls),
            body=obj.to_json(),
        )

    @staticmethod
    def delete(kind: type[Resource], name: str, namespace: str | None, force: bool) -> _Call[None]:
        params = {"force": "true"} if force else None
        return _Call("DELETE", object_path(kind, name, namespace), lambda _: None, params=params)

    @staticmethod
    def apply_all(docs: _Documents, dry_run: bool) -> _Call[_ApplyResults]:
        params = {"dryRun": "true"} if dry_run else None
        return _Call("POST", "/api/v1/apply", _apply_results, params=params, body={"items": docs})

    @staticmethod
    def watch_params(since: int, selector: str | None) -> dict[str, str]:
        params = {"watch": "true", "resourceVersion": str(since)}
        if selector:
            params["labelSelector"] = selector
        return params


def _document(doc: dict[str, Any] | Resource) -> dict[str, Any]:
    return doc.to_json() if isinstance(doc, Resource) else doc


class WatchDecoder(Generic[R]):
    """Turns NDJSON watch lines into typed events; keeps the last revision seen."""

    def __init__(self, cls: type[R], since: int) -> None:
        self.cls = cls
        self.revision = since

    def feed(self, line: str) -> TypedEvent[R] | None:
        if not line.strip():
            return None
        event = jsonlib.loads(line)
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            raise error_from_status(int(obj.get("code", 500)), obj)
        revision = int((obj.get("metadata") or {}).get("resourceVersion") or self.revision)
        self.revision = max(self.revision, revision)
        if kind == "BOOKMARK":
            return None
        return TypedEvent(cast(WatchType, kind), decode_object(self.cls, obj), revision)


def _unavailable(base_url: str, error: httpx.TransportError | TimeoutError) -> Unavailable:
    return Unavailable(
        f"cannot reach the shoal server at {base_url} ({error!r}); "
        "is `shoal server` running and --server/SHOAL_SERVER right?"
    )


class AsyncClient:
    """asyncio client; one connection pool per instance. Use `async with` or `close()`.

    `app`: the server's own ASGI app, when this client runs in the server's process (the
    controllers and the embedded agent of `shoal server`). Requests other than watches are then
    handed to the app in this event loop: the same routes, validation and admission, without
    the HTTP round trip (sockets, the connection pool, parsing on both ends; the server's CPU
    per crash-loop restart fell from 20 to 16-18 ms, docs/reliability.md). Watches stream over
    HTTP, as the app's streaming answers need a real connection."""

    def __init__(self, base_url: str, timeout: float = 10.0, *, app: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        self._calls = self._http
        if app is not None:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            self._calls = httpx.AsyncClient(base_url=self.base_url, transport=transport)
        self._watch_timeout = httpx.Timeout(timeout, read=max(timeout, WATCH_READ_TIMEOUT))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()
        await self._calls.aclose()

    async def _run(self, call: _Call[T]) -> T:
        return call.decode(await self.request_json(call.method, call.path, call.body, call.params))

    async def request_json(
        self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        try:
            # The app in this process has no socket timeouts: a hung answer ends here instead.
            async with asyncio.timeout(self._timeout):
                response = await self._calls.request(method, path, json=json, params=params)
        except (httpx.TransportError, TimeoutError) as error:
            raise _unavailable(self.base_url, error) from error
        raise_for_status(response)
        return response.json() if response.content else None

    async def create(self, obj: R) -> R:
        return await self._run(_Calls.create(obj))

    async def get(self, cls: type[R], name: str, namespace: str = DEFAULT_NAMESPACE) -> R:
        return await self._run(_Calls.get(cls, name, namespace))

    async def list(
        self, cls: type[R], namespace: str | None = None, selector: str | None = None
    ) -> ObjectList[R]:
        return await self._run(_Calls.list(cls, namespace, selector))

    async def update(self, obj: R) -> R:
        return await self._run(_Calls.update(obj))

    async def update_status(self, obj: R) -> R:
        return await self._run(_Calls.update(obj, status=True))

    async def delete(
        self,
        cls: type[Resource],
        name: str,
        namespace: str = DEFAULT_NAMESPACE,
        force: bool = False,
    ) -> None:
        await self._run(_Calls.delete(cls, name, namespace, force))

    async def apply(self, doc: dict[str, Any] | Resource) -> ApplyResult:
        return (await self.apply_all([_document(doc)]))[0]

    async def apply_all(self, docs: _Documents, dry_run: bool = False) -> _ApplyResults:
        return await self._run(_Calls.apply_all(docs, dry_run))

    async def watch(
        self,
        cls: type[R],
        namespace: str | None = None,
        since: int = 0,
        selector: str | None = None,
    ) -> AsyncIterator[TypedEvent[R]]:
        decoder = WatchDecoder(cls, since)
        params = _Calls.watch_params(since, selector)
        path = collection_path(cls, namespace)
        try:
            async with self._http.stream(
                "GET", path, params=params, timeout=self._watch_timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for_status(response)
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as error:
            raise _unavailable(self.base_url, error) from error


class Client:
    """Blocking client with the same methods as `AsyncClient` (for the CLI and scripts)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._watch_timeout = httpx.Timeout(timeout, read=max(timeout, WATCH_READ_TIMEOUT))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: _Call[T]) -> T:
        return call.decode(self.request_json(call.method, call.path, call.body, call.params))

    def request_json(
        self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.TransportError as error:
            raise _unavailable(self.base_url, error) from error
        raise_for_status(response)
        return response.json() if response.content else None

    def create(self, obj: R) -> R:
        return self._run(_Calls.create(obj))

    def get(self, cls: type[R], name: str, namespace: str = DEFAULT_NAMESPACE) -> R:
        return self._run(_Calls.get(cls, name, namespace))

    def list(
        self, cls: type[R], namespace: str | None = None, selector: str | None = None
    ) -> ObjectList[R]:
        return self._run(_Calls.list(cls, namespace, selector))

    def update(self, obj: R) -> R:
        return self._run(_Calls.update(obj))

    def update_status(self, obj: R) -> R:
        return self._run(_Calls.update(obj, status=True))

    def delete(
        self,
        cls: type[Resource],
        name: str,
        namespace: str = DEFAULT_NAMESPACE,
        force: bool = False,
    ) -> None:
        self._run(_Calls.delete(cls, name, namespace, force))

    def apply(self, doc: dict[str, Any] | Resource) -> ApplyResult:
        return self.apply_all([_document(doc)])[0]

    def apply_all(self, docs: _Documents, dry_run: bool = False) -> _ApplyResults:
        return self._run(_Calls.apply_all(docs, dry_run))

    def watch(
        self,
        cls: type[R],
        namespace: str | None = None,
        since: int = 0,
        selector: str | None = None,
    ) -> Iterator[TypedEvent[R]]:
        decoder = WatchDecoder(cls, since)
        params = _Calls.watch_params(since, selector)
        path = collection_path(cls, namespace)
        try:
            with self._http.stream(
                "GET", path, params=params, timeout=self._watch_timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_status(response)
                for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as error:
            raise _unavailable(self.base_url, error) from error


__all__ = [
    "ApiError",
    "ApplyResult",
    "AsyncClient",
    "Client",
    "Gone",
    "ObjectList",
    "TypedEvent",
    "WatchDecoder",
]
