"""The report publisher against an in-process API server: create, write only on change,
continue an existing report, recreate a deleted one, survive an unreachable server."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shoal.api.diffreport import DiffReport, DiffReportSpec
from shoal.api.errors import Unavailable
from shoal.client import AsyncClient
from shoal.differ.aggregate import Aggregator, Sample
from shoal.differ.compare import Reply
from shoal.differ.publish import ReportPublisher

SPEC = DiffReportSpec(deployment="web", candidate_revision="abc")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(aggregator: Aggregator, candidate_price: float) -> None:
    headers = (("content-type", "application/json"),)
    primary = Reply(200, headers, json.dumps({"price": 1.0}).encode())
    candidate = Reply(200, headers, json.dumps({"price": candidate_price}).encode())
    aggregator.record(Sample("GET /p", "GET /p", primary, primary, candidate))


def publisher(client: AsyncClient, aggregator: Aggregator) -> ReportPublisher:
    return ReportPublisher(
        client, aggregator, namespace="default", name="web-abc", spec=SPEC, clock=lambda: NOW
    )


async def test_creates_then_writes_status_only_when_changed(api_url: str) -> None:
    aggregator = Aggregator()
    async with AsyncClient(api_url) as client:
        writer = publisher(client, aggregator)
        record(aggregator, 2.0)
        assert await writer.publish()  # creates the report with the tally so far
        stored = await client.get(DiffReport, "web-abc")
        assert stored.spec == SPEC
        assert (stored.status.compared, stored.status.differing) == (1, 1)
        assert stored.status.last_update_time == NOW
        assert not await writer.publish()  # nothing new
        record(aggregator, 1.0)
        assert await writer.publish()
        stored = await client.get(DiffReport, "web-abc")
        assert (stored.status.compared, stored.status.differing) == (2, 1)
        assert stored.status.endpoints[0].fields[0].path == "price"


async def test_an_existing_report_is_continued(api_url: str) -> None:
    async with AsyncClient(api_url) as client:
        earlier = Aggregator()
        for _ in range(3):
            record(earlier, 2.0)
        await publisher(client, earlier).publish()
        restarted = Aggregator()
        writer = publisher(client, restarted)
        await writer.prepare()
        record(restarted, 2.0)
        await writer.publish()
        stored = await client.get(DiffReport, "web-abc")
        assert (stored.status.compared, stored.status.differing) == (4, 4)


async def test_a_deleted_report_is_created_again(api_url: str) -> None:
    aggregator = Aggregator()
    async with AsyncClient(api_url) as client:
        writer = publisher(client, aggregator)
        record(aggregator, 2.0)
        await writer.publish()
        await client.delete(DiffReport, "web-abc")
        record(aggregator, 2.0)
        await writer.publish()
        assert (await client.get(DiffReport, "web-abc")).status.compared == 2


async def test_an_unreachable_server_raises_and_a_later_publish_catches_up() -> None:
    aggregator = Aggregator()
    async with AsyncClient("http://127.0.0.1:9", timeout=1) as client:
        writer = publisher(client, aggregator)
        record(aggregator, 2.0)
        with pytest.raises(Unavailable):
            await writer.publish()
    assert aggregator.status().compared == 1  # the tally is kept for the next try
