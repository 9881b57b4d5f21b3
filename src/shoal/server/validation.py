"""Turning request bodies into valid wire-form objects, or errors with field paths.

Called by the resource routes and the apply route before anything touches the store. Bad
JSON is a 400; everything else wrong with a document is a 422 `Invalid` whose causes name
each bad field (`spec.template.spec.readinessProbe.periodSeconds`), so a client can fix all
of them in one go.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from shoal.api.errors import BadRequest, Cause, Invalid, causes_from_validation
from shoal.api.meta import API_VERSION, DEFAULT_NAMESPACE, Resource
from shoal.store.base import Object


def parse_json(body: bytes) -> Any:
    """The decoded body; malformed JSON is a 400 that says where it broke."""
    if not body:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"request body is not valid JSON: {error}") from error


def url_causes(
    cls: type[Resource],
    document: Any,
    namespace: str | None,
    name: str | None,
    prefix: str = "",
) -> list[Cause]:
    """Mismatches between a document and the URL (or the kind) it was sent to.

    Fills in what the URL implies: a missing metadata.namespace becomes the URL's namespace
    (or None for cluster-scoped kinds), a missing kind/apiVersion the kind's own.
    """
    dot = f"{prefix}." if prefix else ""
    if not isinstance(document, dict):
        return [Cause(prefix or "<body>", "must be a JSON object", "FieldValueInvalid")]
    causes: list[Cause] = []
    kind = document.setdefault("kind", cls.KIND)
    if kind != cls.KIND:
        causes.append(Cause(f"{dot}kind", f"must be {cls.KIND!r} for /{cls.PLURAL}"))
    api_version = document.setdefault("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        causes.append(Cause(f"{dot}apiVersion", f"must be {API_VERSION!r}"))
    meta = document.get("metadata")
    if not isinstance(meta, dict):
        return causes  # the model reports the missing/invalid metadata
    if name is not None and meta.get("name") is not None and meta.get("name") != name:
        causes.append(Cause(f"{dot}metadata.name", f"must match the name in the URL ({name!r})"))
    if name is not None:
        meta.setdefault("name", name)
    if not cls.NAMESPACED:
        if meta.get("namespace") is not None:
            causes.append(
                Cause(
                    f"{dot}metadata.namespace", f"{cls.KIND} is cluster-scoped and has no namespace"
                )
            )
        meta["namespace"] = None
        return causes
    sent = meta.get("namespace")
    if namespace is not None and sent is not None and sent != namespace:
        causes.append(
            Cause(
                f"{dot}metadata.namespace", f"must match the namespace in the URL ({namespace!r})"
            )
        )
    if sent is None:
        meta["namespace"] = namespace or DEFAULT_NAMESPACE
    return causes


def validate_document(
    cls: type[Resource], document: Any, prefix: str = ""
) -> tuple[Object | None, list[Cause]]:
    """The normalized wire form (defaults filled in) or the validation causes."""
    try:
        model = cls.model_validate(document)
    except ValidationError as error:
        return None, causes_from_validation(error, prefix)
    return model.to_json(), []


def check_object(
    cls: type[Resource], document: Any, namespace: str | None, name: str | None
) -> Object:
    """URL checks plus model validation for a single-object request; raises Invalid."""
    causes = url_causes(cls, document, namespace, name)
    obj, model_causes = validate_document(cls, document)
    causes += model_causes
    if causes or obj is None:
        raise Invalid(f"{cls.KIND} is invalid", causes)
    return obj


def parse_resource_version(value: str | None, prefix: str = "") -> int | None:
    """metadata.resourceVersion as the store's revision number (None when not sent)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        dot = f"{prefix}." if prefix else ""
        raise Invalid(
            "invalid resourceVersion",
            [Cause(f"{dot}metadata.resourceVersion", "must be a revision number")],
        ) from None
