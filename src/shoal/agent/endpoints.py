"""Service.status.endpoints: which pods of this node a Service routes to, as Envoy confirmed it.

The agent runner calls `changed()` after each confirmed data-plane sync; `run()` writes the
Services whose entries for this node differ, at most once a second per burst. Each agent owns
the entries of its own node and keeps the others' (compare-and-set, retried on conflict), so
`shoal get svc` shows READY/TOTAL over every node. An entry is ready when Envoy confirmed it
serves the pod; a pod that is running but not ready (or draining) is listed as not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from shoal.agent.routing import Membership, selects, target_port
from shoal.api.errors import ApiError, Conflict, NotFound
from shoal.api.pod import Pod
from shoal.api.service import Service, ServiceEndpoint
from shoal.client import AsyncClient
from shoal.controllers.informer import Informer

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 1.0
ATTEMPTS = 5


def node_endpoints(
    service: Service, pods: Iterable[Pod], node: str, address: str, confirmed: Membership
) -> list[ServiceEndpoint]:
    """This node's entries of a Service: its running pods the Service selects (pure)."""
    entries = []
    for pod in pods:
        if pod.spec.node_name != node or pod.status.phase != "Running":
            continue
        port = target_port(service, pod)
        if port is None or not selects(service, pod):
            continue
        serving = any(p.state == "serving" for p in confirmed.get(pod.metadata.uid or "", ()))
        entries.append(
            ServiceEndpoint(pod=pod.metadata.name, node=node, ip=address, port=port, ready=serving)
        )
    return sorted(entries, key=lambda e: e.pod)


def merged(
    current: list[ServiceEndpoint], node: str, mine: list[ServiceEndpoint]
) -> list[ServiceEndpoint]:
    others = [e for e in current if e.node != node]
    return sorted([*others, *mine], key=lambda e: (e.node or "", e.pod))


class EndpointsPublisher:
    def __init__(
        self,
        client: AsyncClient,
        *,
        node: str,
        address: str,
        services: Informer[Service],
        pods: Informer[Pod],
        confirmed: Callable[[], Membership],
    ) -> None:
        self.client = client
        self.node, self.address = node, address
        self.services, self.pods, self.confirmed = services, pods, confirmed
        self._dirty = asyncio.Event()

    def changed(self) -> None:
        self._dirty.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            waiter = asyncio.ensure_future(self._dirty.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            if stop.is_set():
                return
            self._dirty.clear()
            for service in self.services.items():
                try:
                    await self._publish(service)
                except ApiError as error:  # the server away: the next change tries again
                    log.debug("endpoints of %s not written: %s", service.metadata.name, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PUBLISH_INTERVAL)

    async def _publish(self, service: Service) -> None:
        mine = node_endpoints(service, self.pods.items(), self.node, self.address, self.confirmed())
        for _ in range(ATTEMPTS):
            wanted = merged(service.status.endpoints, self.node, mine)
            if wanted == service.status.endpoints:
                return
            status = service.status.model_copy(update={"endpoints": wanted})
            try:
                updated = await self.client.update_status(
                    service.model_copy(update={"status": status})
                )
            except Conflict:
                try:
                    service = await self.client.get(
                        Service, service.metadata.name, service.metadata.namespace or "default"
                    )
                except NotFound:
                    return
                continue
            except NotFound:
                return
            self.services.remember(updated)
            return
