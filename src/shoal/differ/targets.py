"""Where the differ replays to: the primary instances and the candidate instances.

Two sources, chosen per side in the differ's configuration (`shoal.differ.config`):

- `addresses: ["127.0.0.1:8001", ...]`: a fixed list. The agent that runs the differ may
  rewrite the configuration file as pods come and go; the differ rereads it (see `main`).
- `selector: "app=web,pod-template-hash=7d9f8c"`: `PodTargetWatcher` lists and watches Pods
  by label selector through the API client and keeps the ready, not terminating ones as
  `Instance`s: `status.hostIP` (default 127.0.0.1), `status.hostPort` and every named port of
  `status.hostPorts`, so a mirror received for the app's port `admin` is replayed to each
  instance's `admin` port (with `portName`, the old rule: one address per pod, that port).
  Pods on any node are reachable this way, and nobody has to push updates to the differ.

A fixed address serves whatever port a mirror came in for (it names one port already).

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


@dataclass(frozen=True, slots=True, order=True)
class Instance:
    """One pod to replay to: its host, its default port ($PORT) and its named ports."""

    host: str
    port: int | None
    named: tuple[tuple[str, int], ...] = ()

    def address(self, port_name: str | None) -> Address | None:
        """Where this pod answers on the app port `port_name` (None: the default port)."""
        if port_name is None:
            return None if self.port is None else (self.host, self.port)
        number = dict(self.named).get(port_name)
        return None if number is None else (self.host, number)

    def addresses(self) -> set[Address]:
        found = {(self.host, number) for _, number in self.named}
        return found | ({(self.host, self.port)} if self.port is not None else set())


Target = Address | Instance


def address_of(target: Target, port_name: str | None) -> Address | None:
    """The address to replay a mirror of the app port `port_name` to, or None."""
    return target.address(port_name) if isinstance(target, Instance) else target


def all_addresses(targets: tuple[Target, ...]) -> set[Address]:
    found: set[Address] = set()
    for target in targets:
        found |= target.addresses() if isinstance(target, Instance) else {target}
    return found


def describe(target: Target) -> str:
    if isinstance(target, Instance):
        named = ",".join(f"{name}={number}" for name, number in target.named)
        return f"{target.host}:{target.port}" + (f" ({named})" if named else "")
    return f"{target[0]}:{target[1]}"


@dataclass(frozen=True, slots=True)
class Targets:
    primaries: tuple[Target, ...] = ()
    candidates: tuple[Target, ...] = ()


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


def pod_instance(pod: Pod) -> Instance | None:
    """A ready pod with all its ports; None while it is not ready, terminating or portless."""
    if pod.metadata.deletion_timestamp is not None or not pod.status.ready:
        return None
    named = tuple(sorted((n, p) for n, p in pod.status.host_ports.items() if n))
    if pod.status.host_port is None and not named:
        return None
    return Instance(pod.status.host_ip or "127.0.0.1", pod.status.host_port, named)


class PodTargetWatcher:
    """Calls `on_change(targets)` with the sorted targets of the matching ready pods (an
    `Instance` each, or with `port_name` the address of that port), each time they change.
    `run()` lists, then watches, and starts over on any error."""

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        selector: str,
        on_change: Callable[[tuple[Target, ...]], None],
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
        self.addresses: tuple[Target, ...] | None = None

    def _target(self, pod: Pod) -> Target | None:
        return pod_address(pod, self.port_name) if self.port_name else pod_instance(pod)

    def _emit(self, pods: dict[str, Pod]) -> None:
        found = [target for pod in pods.values() if (target := self._target(pod)) is not None]
        addresses = tuple(sorted(found, key=describe))
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
