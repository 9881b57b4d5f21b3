"""Checks across objects at write time, after each document passed its own validation.

Today one rule: a Deployment whose BlueGreen or Canary strategy names AnalysisTemplates must
name templates that exist in its namespace (in the store, or earlier in the same apply batch),
and must give every argument those templates declare without a default. A rollout would
otherwise start and fail minutes later; here the writer gets a 422 with field paths such as
`spec.strategy.canary.steps[2].analysis.templates[0].templateName`.

Called by the resource routes (create, replace) and the apply route (whole batch first).
Importing this module also registers the analysis kinds with the API (shoal.api.analysis).
"""

from __future__ import annotations

from collections.abc import Sequence

from shoal.api.analysis import AnalysisTemplate
from shoal.api.deployment import Deployment
from shoal.api.errors import Cause, Invalid, NotFound
from shoal.api.rollout import AnalysisRef
from shoal.store.base import Object, Store


async def _template(
    store: Store, namespace: str, name: str, batch: Sequence[Object]
) -> AnalysisTemplate | None:
    for obj in batch:
        meta = obj.get("metadata", {})
        if obj.get("kind") == "AnalysisTemplate" and (meta.get("namespace"), meta.get("name")) == (
            namespace,
            name,
        ):
            return AnalysisTemplate.from_json(obj)
    try:
        return AnalysisTemplate.from_json(await store.get("AnalysisTemplate", namespace, name))
    except NotFound:
        return None


async def _check_ref(
    store: Store, namespace: str, path: str, ref: AnalysisRef, batch: Sequence[Object]
) -> list[Cause]:
    causes = []
    given = {arg.name for arg in ref.args if arg.value is not None}
    for index, template_ref in enumerate(ref.templates):
        name = template_ref.template_name
        template = await _template(store, namespace, name, batch)
        if template is None:
            causes.append(
                Cause(
                    f"{path}.templates[{index}].templateName",
                    f"AnalysisTemplate {name!r} not found in namespace {namespace!r} "
                    "(apply it first, or in the same file before the Deployment)",
                    "FieldValueNotFound",
                )
            )
            continue
        missing = [arg for arg in template.spec.required_args() if arg not in given]
        if missing:
            causes.append(
                Cause(
                    f"{path}.args",
                    f"AnalysisTemplate {name!r} needs a value for {', '.join(missing)}",
                    "FieldValueRequired",
                )
            )
    return causes


async def causes_for(
    store: Store, obj: Object, prefix: str = "", batch: Sequence[Object] = ()
) -> list[Cause]:
    """Cross-object problems of one valid wire-form object (none for most kinds)."""
    if obj.get("kind") != "Deployment":
        return []
    deployment = Deployment.from_json(obj)
    strategy = deployment.spec.strategy
    refs = []
    if strategy.canary is not None:
        refs = strategy.canary.analysis_refs()
    elif strategy.blue_green is not None:
        refs = strategy.blue_green.analysis_refs()
    namespace = deployment.metadata.namespace or "default"
    dot = f"{prefix}." if prefix else ""
    causes: list[Cause] = []
    for path, ref in refs:
        causes += await _check_ref(store, namespace, dot + path, ref, batch)
    return causes


async def admit(store: Store, obj: Object) -> None:
    """Raise Invalid when `obj` refers to objects that are not there."""
    causes = await causes_for(store, obj)
    if causes:
        raise Invalid(f"{obj.get('kind')} is invalid", causes)


async def admit_batch(store: Store, objects: Sequence[Object]) -> None:
    """The same for an apply batch: a document may refer to one earlier in the batch."""
    causes: list[Cause] = []
    for index, obj in enumerate(objects):
        causes += await causes_for(store, obj, f"items[{index}]", objects[:index])
    if causes:
        raise Invalid(f"{len(objects)} document(s) checked; nothing was applied", causes)
