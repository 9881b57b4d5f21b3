"""What every verb needs: the server URL, the namespace, a client, and kind names resolved.

Global options can be given before the verb (`shoal -n shop get pods`) or after it
(`shoal get pods -n shop`); a verb's own option wins, then the root one, then `SHOAL_SERVER`
and the defaults. Kinds resolve through `shoal.api.registry`; a kind this client does not
know (a feature module's kind, say) is still served, as a generic resource whose spec and
status are kept as plain JSON.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import typer
from pydantic import ConfigDict

import shoal.api
from shoal.api.meta import Resource
from shoal.api.registry import KINDS, resolve_kind
from shoal.client import Client

DEFAULT_SERVER = "http://127.0.0.1:7070"
DEFAULT_NAMESPACE = "default"


ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        help=f"API server URL (env SHOAL_SERVER; default {DEFAULT_SERVER})",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace (default: default)", show_default=False),
]
AllNamespacesOption = Annotated[
    bool, typer.Option("--all-namespaces", "-A", help="Across all namespaces")
]


@dataclass(frozen=True, slots=True)
class RootOptions:
    """The options given before the verb, kept on the root context."""

    server: str | None = None
    namespace: str | None = None


# Set by the root callback for the verb that follows, in the same invocation.
_ROOT_OPTIONS: ContextVar[RootOptions | None] = ContextVar("shoal_root_options", default=None)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a verb acts: which server, which namespace, and whether `-n` was explicit."""

    server: str
    namespace: str
    namespace_explicit: bool


def remember_root_options(options: RootOptions) -> None:
    """Called by the root callback: the options given before the verb."""
    _ROOT_OPTIONS.set(options)


def target(server: str | None = None, namespace: str | None = None) -> Target:
    """Resolve the server and namespace for the running command."""
    root = _ROOT_OPTIONS.get() or RootOptions()
    resolved_server = (
        server or root.server or os.environ.get("SHOAL_SERVER") or DEFAULT_SERVER
    ).rstrip("/")
    chosen_namespace = namespace or root.namespace
    return Target(
        server=resolved_server,
        namespace=chosen_namespace or DEFAULT_NAMESPACE,
        namespace_explicit=chosen_namespace is not None,
    )


@contextmanager
def connect(where: Target) -> Iterator[Client]:
    """A client for one command, closed when the command ends."""
    client = Client(where.server)
    try:
        yield client
    finally:
        client.close()


class GenericResource(Resource):
    """A kind this client has no model for: metadata is typed, everything else kept as is."""

    model_config = ConfigDict(extra="allow")
    KIND: ClassVar[str] = ""


def _load_feature_kinds() -> None:
    """Import every `shoal.api` module: feature kinds (FeatureToggle, DiffReport, ...)
    register themselves with the registry when imported, so no list is kept here."""
    for module in pkgutil.iter_modules(shoal.api.__path__, "shoal.api."):
        try:
            importlib.import_module(module.name)
        except ImportError:
            continue


def generic_kind(name: str) -> type[Resource]:
    """A resource class for an unknown kind name, served at its (guessed) plural."""
    lowered = name.lower()
    plural = lowered if lowered.endswith("s") else f"{lowered}s"
    namespace: dict[str, Any] = {"PLURAL": plural, "__module__": __name__}
    return type(f"Generic_{plural}", (GenericResource,), namespace)


def resolve(name: str) -> type[Resource]:
    """`po`, `pods`, `Pod` → Pod; an unknown name → a generic resource class."""
    try:
        return resolve_kind(name)
    except KeyError:
        _load_feature_kinds()
    try:
        return resolve_kind(name)
    except KeyError:
        return generic_kind(name)


def is_generic(cls: type[Resource]) -> bool:
    return issubclass(cls, GenericResource)


def known_kinds() -> str:
    return ", ".join(sorted(cls.PLURAL for cls in KINDS.values()))


def split_reference(kind_or_ref: str, name: str | None = None) -> tuple[str, str | None]:
    """`deployment/web` → (deployment, web); (`deployment`, `web`) → the same.

    Raises typer.BadParameter when both forms are mixed or the name is empty.
    """
    if "/" in kind_or_ref:
        if name is not None:
            raise typer.BadParameter(
                f"give either KIND/NAME or KIND NAME, not both ({kind_or_ref} {name})"
            )
        kind, _, ref_name = kind_or_ref.partition("/")
        if not kind or not ref_name:
            raise typer.BadParameter(f"{kind_or_ref!r} is not KIND/NAME")
        return kind, ref_name
    return kind_or_ref, name


def object_ref(obj: Resource | dict[str, Any]) -> str:
    """`deployment/web` for an object or a wire-form dict."""
    if isinstance(obj, Resource):
        return f"{obj.kind.lower()}/{obj.metadata.name}"
    kind = str(obj.get("kind", "")).lower()
    return f"{kind}/{(obj.get('metadata') or {}).get('name', '')}"
