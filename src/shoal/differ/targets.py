"""Where the differ replays to: the primary instances and the candidate instances.

Two sources, chosen per side in the differ's configuration (`shoal.differ.config`):

- `addresses: ["127.0.0.1:8001", ...]`: a fixed list. The agent that runs the differ may
  rewrite the configuration file as pods come and go; the differ rereads it (see `main`).
- `selector: "app=web,pod-template-hash=7d9f8c"`: `PodTargetWatcher` lists and watches Pods
  by label selector through the API client and keeps the ready, not terminating ones, at
  `status.hostIP` (default 127.0.0.1) and `status.hostPort` (or `status.hostPorts[portName]`).
  Pods on any node are reachable this way, and nobody has to push updates to the differ.

Called by `shoal.differ.main`; `pod_address` is pure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from shoal.api.errors import ApiError, Gone
from shoal.api.pod import Pod
from shoal.client import AsyncClient
from shoal.differ.http import Address

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Targets:
    primaries: tuple[Address, ...] = ()
    candidates: tuple[Address, ...] = ()


def parse_address(text: str, allow_any_port: bool = False) -> Address:
    """`127.0.0.1:8001` → ("127.0.0.1", 8001); port 0 only with `allow_any_port` (a listen
    address: the system picks). Raises ValueError."""
    host, separator, port = text.strip().rpartition(":")
    lowest = 0 if allow_any_port else 1
    if not separator or not host or not port.isdigit() or not lowest <= int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return (host.strip("[]"), int(port))


def pod_address(pod: Pod, port_name: str | None = None) -> Address | None:
    """Where a ready pod answers; None while it is not ready, terminating or has no port."""
    if pod.metadata.deletion_timestamp is not None or not pod.status.ready:
        return None
    port = pod.status.host_ports.get(port_name) if port_name else pod.status.host_port
    if port is None:
        return None
    return (pod.status.host_ip or "127.0.0.1", port)


class PodTargetWatcher:
    """Calls `on_change(addresses)` with the sorted addresses of the matching ready pods,
    each time they change. `run()` lists, then watches, and starts over on any error."""

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        selector: str,
        on_change: Callable[[tuple[Address, ...]], None],
        *,
        port_name: str | None = None,
        retry_s: float = 1.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.selector = selector
        self.on_change = on_change
        self.port_name = port_name
        self.retry_s = retry_s
        self.addresses: tuple[Address, ...] | None = None

    def _emit(self, pods: dict[str, Pod]) -> None:
        found = (pod_address(pod, self.port_name) for pod in pods.values())
        addresses = tuple(sorted(a for a in found if a is not None))
        if addresses != self.addresses:
            self.addresses = addresses
            self.on_change(addresses)

    async def run(self) -> None:
        while True:
            try:
                await self._list_and_watch()
            except Gone:
                continue  # our revision expired: list again
            except ApiError as error:
                log.warning("watching pods %r: %s; retrying", self.selector, error)
            await asyncio.sleep(self.retry_s)

    async def _list_and_watch(self) -> None:
        listed = await self.client.list(Pod, self.namespace, self.selector)
        pods = {pod.metadata.name: pod for pod in listed.items}
        self._emit(pods)
        async for event in self.client.watch(
            Pod, self.namespace, since=listed.revision, selector=self.selector
        ):
            if event.type == "DELETED":
                pods.pop(event.object.metadata.name, None)
            else:
                pods[event.object.metadata.name] = event.object
            self._emit(pods)
