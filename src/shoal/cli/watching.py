"""Watching from the CLI: a list followed by a watch that survives expiry and reconnects.

`watch_objects` (sync) feeds `get -w` and `events -w`; `follow_object` (async) feeds
`rollout status` and `apply --wait`, which need a timeout that fires even while nothing
changes, hence asyncio. Both re-list when the server says the revision expired (410 Gone),
as the watch contract asks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Literal, TypeVar

from shoal.api.errors import Gone, NotFound
from shoal.api.meta import Resource
from shoal.client import AsyncClient, Client

R = TypeVar("R", bound=Resource)
Change = Literal["ADDED", "MODIFIED", "DELETED", "RELISTED"]

# A stream the server ended cleanly is resumed after this pause (no busy loop).
_RESUME_PAUSE_SECONDS = 0.5


def watch_objects(
    client: Client,
    cls: type[R],
    namespace: str | None,
    since: int,
    selector: str | None = None,
) -> Iterator[tuple[Change, R]]:
    """Every change after `since`, forever; after an expiry, every object as RELISTED."""
    revision = since
    while True:
        try:
            for event in client.watch(cls, namespace=namespace, since=revision, selector=selector):
                revision = max(revision, event.revision)
                yield event.type, event.object
        except Gone:
            listing = client.list(cls, namespace=namespace, selector=selector)
            revision = listing.revision
            for obj in listing.items:
                yield "RELISTED", obj
            continue
        time.sleep(_RESUME_PAUSE_SECONDS)


async def follow_object(
    client: AsyncClient, cls: type[R], namespace: str, name: str
) -> AsyncIterator[R | None]:
    """The object's state now and after every change (None while it does not exist)."""
    while True:
        listing = await client.list(cls, namespace=namespace)
        current = next((o for o in listing.items if o.metadata.name == name), None)
        yield current
        try:
            async for event in client.watch(cls, namespace=namespace, since=listing.revision):
                if event.object.metadata.name != name:
                    continue
                yield None if event.type == "DELETED" else event.object
        except Gone:
            continue
        await asyncio.sleep(_RESUME_PAUSE_SECONDS)


async def get_or_none(client: AsyncClient, cls: type[R], namespace: str, name: str) -> R | None:
    try:
        return await client.get(cls, name, namespace=namespace)
    except NotFound:
        return None
