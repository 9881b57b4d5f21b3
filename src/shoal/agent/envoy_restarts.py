"""Publishing the node's Envoy restarts: each restart by the supervisor becomes an
`EnvoyRestarted` Event on the Node (how the old Envoy ended, when the new one was ready, when
the data plane had its config confirmed by it) and one more in `Node.status.envoyRestarts`, a
counter kept across agent restarts.

The agent runner sets `EnvoyNode.on_restart` to an `EnvoyRestartReporter`. On each restart it
asks the data plane to re-apply its table (as the plain hook did), waits for the first sync
that Envoy confirmed after it, then writes the counter and records the Event. The server may
be away when Envoy dies (a whole machine restarting): the write is retried for a while, then
given up with a log line. `restart_message` is pure, for tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from shoal.agent.envoy.supervisor import EnvoyRestart
from shoal.api.errors import Conflict
from shoal.api.node import Node
from shoal.client import AsyncClient
from shoal.events import EventRecorder

log = logging.getLogger(__name__)

REASON = "EnvoyRestarted"
CONFIRM_TIMEOUT = 30.0  # seconds from the restart; the data plane retries failed applies
WRITE_TRIES = 20  # with the backoff below, about a minute of the server being away


class RestartedDataPlane(Protocol):
    syncs: int  # successful (Envoy-confirmed) syncs so far

    def invalidate(self) -> None: ...

    async def wait_synced(self, after: int, seconds: float) -> bool: ...


class RestartSource(Protocol):
    last_restart: EnvoyRestart | None


def restart_message(restart: EnvoyRestart, confirmed_s: float | None) -> str:
    confirmed = (
        f"its config confirmed {confirmed_s:.2f}s"
        if confirmed_s is not None
        else f"its config not confirmed within {CONFIRM_TIMEOUT:g}s"
    )
    return (
        f"Envoy pid {restart.old_pid} {restart.ended}; restarted as pid {restart.new_pid}, "
        f"ready {restart.ready_s:.2f}s and {confirmed} after it was found dead "
        f"(restart {restart.count} by this agent)"
    )


class EnvoyRestartReporter:
    def __init__(
        self,
        client: AsyncClient,
        recorder: EventRecorder,
        node_name: str,
        dataplane: RestartedDataPlane,
        supervisor: RestartSource,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.node_name = node_name
        self.dataplane = dataplane
        self.supervisor = supervisor
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self) -> None:
        """The restart hook: re-apply the table, then publish the restart in the background
        (the supervisor goes back to watching Envoy at once)."""
        syncs = self.dataplane.syncs
        self.dataplane.invalidate()
        restart = self.supervisor.last_restart
        if restart is None:
            return
        task = asyncio.get_running_loop().create_task(self.publish(restart, syncs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, restart: EnvoyRestart, syncs_before: int) -> None:
        confirmed_s = await self._confirmed(restart, syncs_before)
        node = await self._count()
        if node is None:
            log.warning("envoy restart not published: %s", restart_message(restart, confirmed_s))
            return
        self.recorder.record(node, "Warning", REASON, restart_message(restart, confirmed_s))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _confirmed(self, restart: EnvoyRestart, syncs_before: int) -> float | None:
        """Seconds from Envoy's death to the first confirmed sync after it, None if none came
        within CONFIRM_TIMEOUT."""
        remaining = CONFIRM_TIMEOUT - (time.monotonic() - restart.died_at)
        if remaining > 0 and await self.dataplane.wait_synced(syncs_before, remaining):
            return time.monotonic() - restart.died_at
        return None

    async def _count(self) -> Node | None:
        """Node.status.envoyRestarts + 1 (re-read on a conflict with a heartbeat); the Node as
        written, or None when the server could not be reached."""
        delay = 0.1
        for _ in range(WRITE_TRIES):
            try:
                node = await self.client.get(Node, self.node_name)
                status = node.status.model_copy(
                    update={"envoy_restarts": node.status.envoy_restarts + 1}
                )
                return await self.client.update_status(node.model_copy(update={"status": status}))
            except Conflict:
                continue
            except Exception as error:  # server away: try again a little later
                log.debug("envoy restart count not written yet: %s", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return None
