"""The node's data plane: one supervised Envoy kept in step with the desired routing table.

The agent runner calls `update(table, membership)` whenever Services or Pods change; a single
sync task writes the table in make-before-break order and waits for Envoy to confirm every
phase (`apply_and_confirm`). Only then does `confirmed` move, and pod workers waiting on it
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
    EnvoyConfirmError,
    EnvoySupervisor,
    RoutingTable,
    XdsWriter,
    apply_and_confirm,
)
from shoal.agent.routing import Membership

log = logging.getLogger(__name__)


class DataPlane:
    """Envoy process + xDS files + the confirmed membership of every pod."""

    def __init__(self, envoy_dir: Path, *, node_name: str, admin_port: int) -> None:
        self.writer = XdsWriter(envoy_dir)
        self.node_name = node_name
        self.admin_port = admin_port
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
        self._dirty = asyncio.Event()
        self._changed = asyncio.Condition()
        self.on_error: Callable[[str], None] | None = None

    @property
    def admin(self):  # type: ignore[no-untyped-def]  # EnvoyAdmin; replaced on restart
        return self.supervisor.admin

    async def start(self) -> None:
        """Write the bootstrap and start (or adopt) Envoy."""
        self.writer.write_bootstrap(
            node_id=self.node_name, node_cluster="shoal", admin_port=self.admin_port
        )
        await self.supervisor.start()

    async def stop(self) -> None:
        await self.supervisor.stop()

    async def detach(self) -> None:
        """Leave Envoy running for the next agent (used on crash-like exits in tests)."""
        await self.supervisor.detach()
        await self.supervisor.admin.close()

    def update(self, table: RoutingTable, membership: Membership) -> None:
        self.desired = (table, membership)
        self._dirty.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Apply the latest desired table until `stop`; failed applies are retried."""
        backoff = 0.05
        while not stop.is_set():
            waiter = asyncio.ensure_future(self._dirty.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            if stop.is_set():
                return
            self._dirty.clear()
            table, membership = self.desired
            try:
                await apply_and_confirm(self.writer, self.supervisor.admin, table)
            except (EnvoyConfirmError, OSError, ValueError) as error:
                self.last_error = str(error)
                log.warning("envoy config not applied: %s", error)
                if self.on_error is not None:
                    self.on_error(str(error))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._dirty.set()
                continue
            except Exception as error:  # admin API unreachable while Envoy restarts
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("envoy sync failed: %s", self.last_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._dirty.set()
                continue
            backoff = 0.05
            self.last_error = None
            self.syncs += 1
            async with self._changed:
                self.confirmed = membership
                self._changed.notify_all()

    async def _restarted(self, pid: int) -> None:
        log.warning("envoy restarted (pid %s); re-applying the last table", pid)
        self._dirty.set()

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            return predicate()

    async def wait_serving(self, uid: str, timeout: float) -> bool:
        """True once Envoy confirmed routing to the pod in every cluster that should list it."""

        def serving() -> bool:
            wanted = self.desired[1].get(uid, ())
            have = self.confirmed.get(uid, ())
            return bool(wanted) and all(p in have and p.state == "serving" for p in wanted)

        return await self._wait(serving, timeout)

    async def drain(self, uid: str, timeout: float) -> bool:
        """Wait until Envoy confirmed the pod gets no new requests (draining or absent), then
        until its in-flight requests are done. False when `timeout` ran out first."""
        deadline = time.monotonic() + timeout

        def out_of_rotation() -> bool:
            return all(p.state == "draining" for p in self.confirmed.get(uid, ()))

        if not await self._wait(out_of_rotation, timeout):
            return False
        for placement in self.confirmed.get(uid, ()):
            remaining = max(deadline - time.monotonic(), 0.0)
            with contextlib.suppress(Exception):  # Envoy gone: nothing in flight to wait for
                if not await self.supervisor.admin.wait_drained(
                    placement.cluster, placement.host, placement.port, remaining
                ):
                    return False
        return True
