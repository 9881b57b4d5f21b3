"""The Envoy sink: the one seam between the agent's logic and its data plane.

The agent runner depends on the `EnvoySink` protocol only: `FileEnvoySink` is the real one
(xDS files + admin API, make-before-break with confirmation), `MemoryEnvoySink` the in-memory
fake for unit tests of the runner's logic (it records every table and lets a test say how many
requests are in flight to an endpoint).

The stop path of one endpoint, as the runner should drive it:

    await sink.apply(table_with(endpoint, draining=True))   # no new requests; confirmed
    await sink.wait_drained(cluster, host, port, timeout_s)  # in-flight ones finished
    await sink.apply(table_without(endpoint))               # gone from Envoy; confirmed
    ... then preStop, SIGTERM, grace period, SIGKILL

Draining before removing matters: Envoy drops a removed endpoint from /clusters at once, with
its in-flight requests, so after removal nothing could tell when they have finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from shoal.agent.envoy.admin import EnvoyAdmin
from shoal.agent.envoy.config import RoutingTable
from shoal.agent.envoy.writer import AppliedVersions, XdsWriter


class EnvoySink(Protocol):
    async def apply(self, table: RoutingTable) -> AppliedVersions:
        """Make `table` the data plane's state; return once Envoy confirmed it."""
        ...

    async def wait_drained(self, cluster: str, host: str, port: int, timeout_s: float) -> bool:
        """True once no request is in flight to the endpoint; False when `timeout_s` ran out."""
        ...


class FileEnvoySink:
    def __init__(self, writer: XdsWriter, admin: EnvoyAdmin, confirm_timeout_s: float = 5.0):
        self.writer, self.admin, self.confirm_timeout_s = writer, admin, confirm_timeout_s

    async def apply(self, table: RoutingTable) -> AppliedVersions:
        """Each phase of the writer's plan is written, then confirmed, before the next one."""
        self.writer.collect_garbage(table)
        applied = AppliedVersions()
        for phase in self.writer.plan(table):
            baseline = await self.admin.rejection_counts()
            versions = self.writer.write(phase)
            await self.admin.confirm(versions, self.confirm_timeout_s, baseline=baseline)
            applied.merge(versions)
        return applied

    async def wait_drained(self, cluster: str, host: str, port: int, timeout_s: float) -> bool:
        return await self.admin.wait_drained(cluster, host, port, timeout_s)


@dataclass
class MemoryEnvoySink:
    """In-memory fake: records applied tables; `in_flight[(cluster, host, port)]` is what
    `wait_drained` sees (a test lowers it to let a drain finish)."""

    tables: list[RoutingTable] = field(default_factory=list)
    in_flight: dict[tuple[str, str, int], int] = field(default_factory=dict)
    version: int = 0

    @property
    def current(self) -> RoutingTable | None:
        return self.tables[-1] if self.tables else None

    async def apply(self, table: RoutingTable) -> AppliedVersions:
        table.check()
        if self.tables and self.tables[-1] == table:
            return AppliedVersions()
        self.tables.append(table)
        self.version += 1
        return AppliedVersions(cds=str(self.version), lds=str(self.version))

    async def wait_drained(self, cluster: str, host: str, port: int, timeout_s: float) -> bool:
        return self.in_flight.get((cluster, host, port), 0) == 0
