"""`shoal scale deployment/NAME --replicas N` (also ReplicaSets).

Read, set `spec.replicas`, write with the read resourceVersion; a 409 Conflict (a controller
wrote meanwhile) means read again and retry, so no concurrent change is lost.
"""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.api.deployment import Deployment
from shoal.api.errors import Conflict
from shoal.api.replicaset import ReplicaSet
from shoal.cli.context import (
    NamespaceOption,
    ServerOption,
    connect,
    resolve,
    split_reference,
    target,
)
from shoal.cli.errors import CommandError

CONFLICT_RETRIES = 5
SCALABLE: tuple[type[Deployment] | type[ReplicaSet], ...] = (Deployment, ReplicaSet)


def scale_command(
    ref: Annotated[str, typer.Argument(help="deployment/NAME (or replicaset/NAME)")],
    replicas: Annotated[
        int, typer.Option("--replicas", min=0, help="The number of replicas wanted")
    ],
    name: Annotated[str | None, typer.Argument(help="NAME, when KIND is given alone")] = None,
    *,
    namespace: NamespaceOption = None,
    server: ServerOption = None,
) -> None:
    """Set the number of replicas of a Deployment or ReplicaSet."""
    kind, object_name = split_reference(ref, name)
    if object_name is None:
        raise typer.BadParameter(f"give the object as KIND/NAME (got {ref!r})")
    cls = resolve(kind)
    if cls not in SCALABLE:
        raise typer.BadParameter(f"cannot scale {kind!r}: only deployments and replicasets")
    where = target(server, namespace)
    with connect(where) as client:
        for _attempt in range(CONFLICT_RETRIES):
            obj = client.get(cls, object_name, namespace=where.namespace)
            if not isinstance(obj, Deployment | ReplicaSet):  # resolve() gave one of them
                raise CommandError(f"cannot scale {kind!r}")
            obj.spec.replicas = replicas
            try:
                client.update(obj)
            except Conflict:
                continue
            typer.echo(f"{cls.KIND.lower()}/{object_name} scaled to {replicas}")
            return
    raise CommandError(f"{kind}/{object_name} kept changing ({CONFLICT_RETRIES} conflicts); retry")
