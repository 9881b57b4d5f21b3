"""The node's data plane: one supervised Envoy kept in step with the desired routing table.

The agent runner gives it a `source` (a function computing the routing table and membership
from its caches) and calls `invalidate()` whenever Services, Pods or Nodes change. A single sync
task recomputes the table when it wakes (so a burst of changes costs one computation and one
Envoy update), writes it in make-before-break order and waits for Envoy to confirm every phase
(`apply_and_confirm`). Only then does `confirmed` move, and pod workers waiting on it
(`wait_serving`, `drain`) wake up. That is how "Ready" means "Envoy routes to it" and how a pod
is stopped only after Envoy has stopped sending it requests and its in-flight ones finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from shoal.agent.envoy import (
    EnvoyAdmin,
    EnvoyConfirmError,
    EnvoySupervisor,
    RoutingTable,
    XdsWriter,
    apply_and_confirm,
)
from shoal.agent.routing import Membership

log = logging.getLogger(__name__)

RoutingSource = Callable[[], tuple[RoutingTable, Membership]]
MAX_RETRY_SECONDS = 5.0


class DataPlane:
    """Envoy process + xDS files + the confirmed membership of every pod."""

    def __init__(
        self, envoy_dir: Path, *, node_name: str, admin_port: int, source: RoutingSource
    ) -> None:
        self.writer = XdsWriter(envoy_dir)
        self.node_name = node_name
        self.admin_port = admin_port
        self.source = source
        self.supervisor = EnvoySupervisor(
            bootstrap=self.writer.bootstrap_path,
            admin_port=admin_port,
            state_file=envoy_dir / "envoy.state.json",
            log_file=envoy_dir / "envoy.log",
            on_restart=self._restarted,
        )
        self.desired: tuple[RoutingTable, Membership] = (RoutingTable(), {})
        self.confirmed: Membership = {}
        self.last_error: str | None = None
        self.syncs = 0
        self._requested = 0  # invalidations so far
        self._confirmed_request = 0  # the last invalidation whose table Envoy confirmed
        self._dirty = asyncio.Event()
        self._changed = asyncio.Condition()

    @property
    def admin(self) -> EnvoyAdmin:
        return self.supervisor.admin  # replaced when Envoy restarts

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

    def invalidate(self) -> None:
        """Something the table depends on changed: recompute and apply it soon."""
        self._requested += 1
        self._dirty.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Apply the latest table until `stop`; failed applies are retried with backoff."""
        backoff = 0.05
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while True:
                waiter = asyncio.ensure_future(self._dirty.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if stop.is_set():
                    return
                self._dirty.clear()
                if await self._sync():
                    backoff = 0.05
                    continue
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RETRY_SECONDS)
                self._dirty.set()
        finally:
            stopper.cancel()

    async def _sync(self) -> bool:
        requested = self._requested
        table, membership = self.desired = self.source()
        try:
            await apply_and_confirm(self.writer, self.supervisor.admin, table)
        except (EnvoyConfirmError, OSError, ValueError) as error:
            self.last_error = str(error)
        except Exception as error:  # admin API unreachable while Envoy restarts
            self.last_error = f"{type(error).__name__}: {error}"
        else:
            self.last_error = None
            self.syncs += 1
            async with self._changed:
                self.confirmed = membership
                self._confirmed_request = requested
                self._changed.notify_all()
            return True
        log.warning("envoy config not applied: %s", self.last_error)
        return False

    async def _restarted(self, pid: int) -> None:
        log.warning("envoy restarted (pid %s); re-applying the last table", pid)
        self._dirty.set()

    async def _wait(self, predicate: Callable[[], bool], seconds: float) -> bool:
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(predicate), seconds)
            return predicate()

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
                if not await self.admin.wait_drained(
                    placement.cluster, placement.host, placement.port, remaining
                ):
                    return False
        return True
