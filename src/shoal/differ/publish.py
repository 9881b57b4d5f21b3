"""Publishes the differ's tally as the status of a DiffReport, through the API client.

`ReportPublisher.run()` first finds or creates the report: an existing one (created by the
controller with an owner reference, or by an earlier run of this differ) is continued, its
counts seeded into the aggregator so that `compared` never goes backwards across a differ
restart. Then, every `interval_s`, if anything was recorded since the last write, it writes
the status subresource (only the differ writes it, so no resourceVersion precondition). A
deleted report is created again; an unreachable server is retried at the next tick, and the
tally keeps growing meanwhile. `publish()` is also called once on shutdown.

Called by `shoal.differ.main`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from shoal.api.diffreport import DiffReport, DiffReportSpec
from shoal.api.errors import AlreadyExists, ApiError, NotFound
from shoal.api.meta import now_utc
from shoal.client import AsyncClient
from shoal.differ.aggregate import Aggregator

log = logging.getLogger(__name__)


class ReportPublisher:
    def __init__(
        self,
        client: AsyncClient,
        aggregator: Aggregator,
        *,
        namespace: str,
        name: str,
        spec: DiffReportSpec,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.client = client
        self.aggregator = aggregator
        self.namespace = namespace
        self.name = name
        self.spec = spec
        self.clock = clock
        self.prepared = False
        self.published_changes = -1
        self.writes = 0

    def _report(self) -> DiffReport:
        report: DiffReport = DiffReport.new(self.name, self.namespace, spec=self.spec)
        report.status = self.aggregator.status()
        report.status.last_update_time = self.clock()
        return report

    async def prepare(self) -> bool:
        """Continue the existing report, or create it (True). Raises ApiError (Unavailable)."""
        try:
            existing = await self.client.get(DiffReport, self.name, self.namespace)
        except NotFound:
            try:
                await self.client.create(self._report())
            except AlreadyExists:
                return await self.prepare()  # created meanwhile (by the controller): continue it
            self.published_changes = self.aggregator.changes
            self.prepared = True
            self.writes += 1
            return True
        self.aggregator.seed(existing.status)
        self.prepared = True
        return False

    async def publish(self) -> bool:
        """Write the status if it changed; True when written. Raises ApiError."""
        created = False if self.prepared else await self.prepare()
        changes = self.aggregator.changes
        if changes == self.published_changes:
            return created
        try:
            await self.client.update_status(self._report())
        except NotFound:
            await self.client.create(self._report())
        self.published_changes = changes
        self.writes += 1
        return True

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            try:
                await self.publish()
            except ApiError as error:
                log.warning("publishing DiffReport %s: %s", self.name, error)
            await asyncio.sleep(interval_s)
