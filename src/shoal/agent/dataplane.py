"""The node's data plane: the desired routing table kept applied to Envoy, and the confirmed
membership of every pod that pod workers wait on.

The agent runner gives `DataPlane` an `EnvoySink` (the real one is `EnvoyNode.sink`: xDS files
plus the admin API of the supervised Envoy; unit tests pass `MemoryEnvoySink`) and a `source`
(a function computing the routing table and membership from its caches), and calls
`invalidate()` whenever Services, Pods or Nodes change. A single sync task recomputes the table
when it wakes, so a burst of changes costs one computation and one Envoy update, and applies it
through the sink, which returns once Envoy confirmed it (make-before-break). Only then does
`confirmed` move, and pod workers waiting on it (`wait_serving`, `drain`) wake up. That is how
"Ready" means "Envoy routes to it" and how a pod is stopped only after Envoy has stopped sending
it requests and its in-flight ones finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from shoal.agent.envoy import (
    AppliedVersions,
    EnvoyAdmin,
    EnvoyConfirmError,
    EnvoySink,
    EnvoySupervisor,
    RoutingTable,
    XdsWriter,
    apply_and_confirm,
)
from shoal.agent.listener_ports import leave_out_taken_ports
from shoal.agent.routing import Membership

log = logging.getLogger(__name__)

RoutingSource = Callable[[], tuple[RoutingTable, Membership]]
MAX_RETRY_SECONDS = 5.0
MIN_SYNC_INTERVAL = 0.05  # seconds from the start of a sync that changed Envoy to the next


class DataPlane:
    """The sync loop between the desired table and Envoy, and what Envoy confirmed."""

    def __init__(
        self,
        sink: EnvoySink,
        source: RoutingSource,
        port_probe: Callable[[str, int], bool] | None = None,
        held: Iterable[tuple[str, int]] = (),
        min_interval: float = MIN_SYNC_INTERVAL,
    ) -> None:
        """`port_probe` (the real agent passes `can_listen`) tests new listeners' ports;
        `held`: the listener addresses Envoy holds already (an adopted Envoy's own ports are
        not "taken": leaving them out would withdraw a serving Service)."""
        self.sink = sink
        self.min_interval = min_interval
        self.source = source
        self.port_probe = port_probe
        self.on_ports_taken: Callable[[dict[str, int]], None] = lambda _taken: None
        self._held: set[tuple[str, int]] = set(held)  # listener addresses Envoy holds
        self.desired: tuple[RoutingTable, Membership] = (RoutingTable(), {})
        self.confirmed: Membership = {}
        self.last_error: str | None = None
        self.syncs = 0
        self._requested = 0  # invalidations so far
        self._confirmed_request = 0  # the last invalidation whose table Envoy confirmed
        self._dirty = asyncio.Event()
        self._urgent = asyncio.Event()  # a change that must not wait for a burst to gather
        self._changed = asyncio.Condition()
        self.on_confirmed: Callable[[], None] = lambda: None  # after each confirmed sync

    def invalidate(self, *, urgent: bool = False) -> None:
        """Something the table depends on changed: recompute and apply it soon. `urgent`: at
        once, even right after another change (a traffic switch: promote, undo, abort)."""
        self._requested += 1
        self._dirty.set()
        if urgent:
            self._urgent.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Apply the latest table until `stop`; failed applies are retried with backoff."""
        backoff = 0.05
        last_change = -self.min_interval  # start of the last sync that changed Envoy's config
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while True:
                waiter = asyncio.ensure_future(self._dirty.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if stop.is_set():
                    return
                # A change right after a sync that changed Envoy (a burst: 200 pods getting
                # ready) waits a little, so that one table carries many changes; a lone change
                # goes at once. A sync that changed nothing (a Deployment's status write that
                # moves no route, e.g. the promote annotation just before its traffic switch)
                # does not hold the next one back: that wait was most of a switch's latency.
                # A traffic switch is a lone change someone waits for: it ends the wait.
                hold = last_change + self.min_interval - time.monotonic()
                if hold > 0 and not self._urgent.is_set():
                    urgent = asyncio.ensure_future(self._urgent.wait())
                    await asyncio.wait(
                        {stopper, urgent}, timeout=hold, return_when=asyncio.FIRST_COMPLETED
                    )
                    urgent.cancel()
                    if stop.is_set():
                        return
                self._urgent.clear()
                started = time.monotonic()
                self._dirty.clear()
                applied = await self._sync()
                if applied is not None:
                    backoff = 0.05
                    if not applied.is_empty():
                        last_change = started
                    continue
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RETRY_SECONDS)
                self._dirty.set()
        finally:
            stopper.cancel()

    async def _sync(self) -> AppliedVersions | None:
        """Compute and apply the table: what changed in Envoy, None when the apply failed."""
        requested = self._requested
        table, membership = self.desired = self.source()
        if self.port_probe is not None:
            table, taken = leave_out_taken_ports(table, self._held, self.port_probe)
            if taken:
                self.on_ports_taken(taken)
        try:
            applied = await self.sink.apply(table)
        except (EnvoyConfirmError, OSError, ValueError) as error:
            self.last_error = str(error)
        except Exception as error:  # admin API unreachable while Envoy restarts
            self.last_error = f"{type(error).__name__}: {error}"
        else:
            self.last_error = None
            self.syncs += 1
            self._held = {(listener.address, listener.port) for listener in table.listeners}
            async with self._changed:
                self.confirmed = membership
                self._confirmed_request = requested
                self._changed.notify_all()
            self.on_confirmed()
            return applied
        log.warning("envoy config not applied: %s", self.last_error)
        return None

    async def _wait(self, predicate: Callable[[], bool], seconds: float) -> bool:
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(predicate), seconds)
            return predicate()

    async def wait_synced(self, after: int, seconds: float) -> bool:
        """True once `syncs` passed `after` (a sync Envoy confirmed), False if `seconds` ran out."""
        return await self._wait(lambda: self.syncs > after, seconds)

    async def wait_serving(self, uid: str, seconds: float) -> bool:
        """True once Envoy confirmed routing to the pod in every cluster that should list it."""

        def serving() -> bool:
            wanted = self.desired[1].get(uid, ())
            have = self.confirmed.get(uid, ())
            return bool(wanted) and all(p in have and p.state == "serving" for p in wanted)

        return await self._wait(serving, seconds)

    async def drain(self, uid: str, seconds: float) -> bool:
        """Wait until Envoy confirmed the pod gets no new requests (draining or absent), then
        until its in-flight requests are done. False when `seconds` ran out first.

        Only a table computed after this call counts: one computed before it (and still being
        applied) may route to the pod, even if the last confirmed table does not list it."""
        deadline = time.monotonic() + seconds
        self.invalidate()
        wanted = self._requested

        def out_of_rotation() -> bool:
            return self._confirmed_request >= wanted and all(
                p.state == "draining" for p in self.confirmed.get(uid, ())
            )

        if not await self._wait(out_of_rotation, seconds):
            return False
        for placement in self.confirmed.get(uid, ()):
            remaining = max(deadline - time.monotonic(), 0.0)
            with contextlib.suppress(Exception):  # Envoy gone: nothing in flight to wait for
                if not await self.sink.wait_drained(
                    placement.cluster, placement.host, placement.port, remaining
                ):
                    return False
        return True


class EnvoyNode:
    """The node's Envoy: its process (supervised, re-adopted after an agent restart), its xDS
    files, and `sink`, the EnvoySink that writes those files and asks Envoy to confirm them."""

    def __init__(self, envoy_dir: Path, *, node_name: str, admin_port: int) -> None:
        self.writer = XdsWriter(envoy_dir)
        self.node_name = node_name
        self.admin_port = admin_port
        self.on_restart: Callable[[], None] = lambda: None
        self.supervisor = EnvoySupervisor(
            bootstrap=self.writer.bootstrap_path,
            admin_port=admin_port,
            state_file=envoy_dir / "envoy.state.json",
            log_file=envoy_dir / "envoy.log",
            on_restart=self._restarted,
        )
        self.sink = _SupervisedSink(self)

    @property
    def admin(self) -> EnvoyAdmin:
        return self.supervisor.admin  # a new one after each restart of Envoy

    def listener_addresses(self) -> set[tuple[str, int]]:
        """The addresses of the listeners in the last written LDS file: what a running (or
        restarted) Envoy listens on before this agent applies anything."""
        try:
            document = json.loads(self.writer.path("lds").read_text())
            addresses = [r["address"]["socket_address"] for r in document["resources"]]
            return {(a["address"], int(a["port_value"])) for a in addresses}
        except (OSError, ValueError, KeyError, TypeError):
            return set()

    async def start(self) -> None:
        """Write the bootstrap and start (or adopt) Envoy."""
        self.writer.write_bootstrap(
            node_id=self.node_name, node_cluster="shoal", admin_port=self.admin_port
        )
        await self.supervisor.start()

    async def stop(self) -> None:
        await self.supervisor.stop()

    async def detach(self) -> None:
        """Leave Envoy running for the next agent (the agent steps away without stopping it)."""
        await self.supervisor.detach()
        await self.supervisor.admin.close()

    async def _restarted(self, pid: int) -> None:
        log.warning("envoy restarted (pid %s); re-applying the last table", pid)
        self.on_restart()


class _SupervisedSink:
    """FileEnvoySink's behaviour, always through the current Envoy's admin API."""

    def __init__(self, envoy: EnvoyNode) -> None:
        self.envoy = envoy

    async def apply(self, table: RoutingTable) -> AppliedVersions:
        return await apply_and_confirm(self.envoy.writer, self.envoy.admin, table)

    async def wait_drained(self, cluster: str, host: str, port: int, timeout_s: float) -> bool:
        return await self.envoy.admin.wait_drained(cluster, host, port, timeout_s)
