"""The differ wired together in-process: mirrors in, report out; admin API; configuration
file reloads; a last publish on stop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from differ_stubs import StubUpstream, eventually, json_answer
from typer.testing import CliRunner

from shoal.api.diffreport import DiffReport
from shoal.cli.main import app as shoal_cli
from shoal.client import AsyncClient
from shoal.differ.config import DifferConfig
from shoal.differ.main import Differ
from shoal.differ.targets import Instance, Targets

SHADOW = {"host": "shop-shadow"}


def priced(price: float) -> Any:
    def answer(method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        return json_answer({"price": price, "requestId": uuid.uuid4().hex})

    return answer


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, StubUpstream]]:
    started = {
        "p1": await StubUpstream(priced(1.0)).start(),
        "p2": await StubUpstream(priced(1.0)).start(),
        "same": await StubUpstream(priced(1.0)).start(),
        "bad": await StubUpstream(priced(2.0)).start(),
    }
    yield started
    for stub in started.values():
        await stub.close()


def config(upstreams: dict[str, StubUpstream], candidate: str, **more: Any) -> DifferConfig:
    def where(name: str) -> str:
        return f"127.0.0.1:{upstreams[name].port}"

    return DifferConfig.from_json(
        {
            "listen": "127.0.0.1:0",
            "deployment": "shop",
            "candidateRevision": "abc",
            "primary": {"addresses": [where("p1"), where("p2")]},
            "candidate": {"addresses": [where(candidate)]},
            **more,
        }
    )


async def test_mirrors_in_stats_and_report_out(upstreams: dict[str, StubUpstream]) -> None:
    differ = Differ(config(upstreams, "bad"))
    port = await differ.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for number in range(10):
                assert (await client.get(f"/items/{number}", headers=SHADOW)).status_code == 202
            await client.post("/items", headers=SHADOW, content=b"{}")
            await eventually(lambda: differ.aggregator.status().compared == 10)
            stats = (await client.get("/stats")).json()
            report = (await client.get("/report")).json()
            assert (await client.get("/healthz")).text == "ok\n"
            assert (await client.get("/nope")).status_code == 404
            assert (await client.post("/stats")).status_code == 405
    finally:
        await differ.stop()
    assert stats["received"] == 11 and stats["skipped"] == 1 and stats["differing"] == 10
    assert stats["targets"]["candidate"] == [f"127.0.0.1:{upstreams['bad'].port}"]
    assert report["endpoints"][0]["endpoint"] == "GET /items/{id}"
    assert report["endpoints"][0]["fields"][0]["path"] == "price"
    assert upstreams["bad"].received[0].headers["x-shoal-shadow"] == "1"
    assert all(r.method == "GET" for r in upstreams["bad"].received)


async def test_a_mirror_on_a_named_ports_listener_is_replayed_to_that_port(
    upstreams: dict[str, StubUpstream],
) -> None:
    differ = Differ(config(upstreams, "same", ports={"admin": "127.0.0.1:0"}))
    port = await differ.start()
    host = "127.0.0.1"
    # Pods as the selector watcher sees them: the default port answers 1.0 on both sides,
    # the candidate's `admin` port answers 2.0.
    primary = Instance(host, upstreams["p1"].port, (("admin", upstreams["p2"].port),))
    candidate = Instance(host, upstreams["same"].port, (("admin", upstreams["bad"].port),))
    differ.replayer.set_targets(Targets((primary,), (candidate,)))
    try:
        async with httpx.AsyncClient() as client:
            await client.get(f"http://{host}:{port}/a", headers=SHADOW)
            await client.get(f"http://{host}:{differ.ports['admin']}/b", headers=SHADOW)
            await eventually(lambda: differ.aggregator.status().compared == 2)
    finally:
        await differ.stop()
    assert differ.aggregator.status().differing == 1
    assert [r.target for r in upstreams["bad"].received] == ["/b"]
    assert [r.target for r in upstreams["same"].received] == ["/a"]


async def test_a_changed_configuration_file_is_applied(
    upstreams: dict[str, StubUpstream], tmp_path: Path
) -> None:
    path = tmp_path / "differ.json"
    first = config(upstreams, "bad")
    first.write(path)
    differ = Differ(first, path)
    port = await differ.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await client.get("/p", headers=SHADOW)
            await eventually(lambda: len(upstreams["bad"].received) == 1)
            path.write_text("{broken")  # kept: the old configuration stays
            await asyncio.sleep(0.7)
            config(upstreams, "same", compare={"statusOnly": True}).write(path)
            await eventually(
                lambda: differ.replayer.targets.candidates == (upstreams["same"].address,)
            )
            await client.get("/p", headers=SHADOW)
            await eventually(lambda: len(upstreams["same"].received) == 1)
    finally:
        await differ.stop()
    assert len(upstreams["bad"].received) == 1
    assert differ.aggregator.rules.status_only


async def test_publishes_while_running(upstreams: dict[str, StubUpstream], api_url: str) -> None:
    differ = Differ(config(upstreams, "same", server=api_url, publishIntervalSeconds=0.1))
    port = await differ.start()
    async with AsyncClient(api_url) as api:
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(5):
                    await client.get("/price", headers=SHADOW)
            for _ in range(200):
                report = await api.get(DiffReport, "shop-abc")
                if report.status.compared == 5:
                    break
                await asyncio.sleep(0.05)
        finally:
            await differ.stop()
    assert report.status.compared == 5 and report.status.differing == 0
    assert report.status.endpoints[0].noise[0].path == "requestId"
    assert report.spec.deployment == "shop" and report.spec.candidate_revision == "abc"


async def test_publishes_once_more_on_stop(
    upstreams: dict[str, StubUpstream], api_url: str
) -> None:
    differ = Differ(config(upstreams, "same", server=api_url, publishIntervalSeconds=3600))
    port = await differ.start()
    assert differ.publisher is not None
    publisher = differ.publisher
    async with AsyncClient(api_url) as api:
        try:
            await eventually(lambda: publisher.writes == 1)  # the report is created at start
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(3):
                    await client.get("/price", headers=SHADOW)
            await eventually(lambda: differ.aggregator.status().compared == 3)
            assert (await api.get(DiffReport, "shop-abc")).status.compared == 0
        finally:
            await differ.stop()
        assert (await api.get(DiffReport, "shop-abc")).status.compared == 3


def test_shoal_differ_forwards_to_the_differs_own_flags() -> None:
    result = CliRunner().invoke(shoal_cli, ["differ", "--help"])
    assert result.exit_code == 0
    assert "--primary-selector" in result.output and "--ignore-field" in result.output
    bad = CliRunner().invoke(shoal_cli, ["differ", "--deployment=web", "--primary=h:1"])
    assert bad.exit_code == 2


def test_lower_priority_lowers_the_process_and_a_leaders_autogroup(tmp_path: Path) -> None:
    # In child processes: niceness cannot be raised back, and this test must not slow pytest.
    start = os.nice(0)
    for leader in (True, False):
        group = tmp_path / f"autogroup-{leader}"
        code = (
            "import os, pathlib; from shoal.differ.main import lower_priority; "
            f"lower_priority(7, {leader}, pathlib.Path({str(group)!r})); lower_priority(0); "
            "print(os.nice(0), os.sched_getscheduler(0) == os.SCHED_IDLE)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            start_new_session=leader,  # as the agent starts a differ Pod
        )
        niceness, idle = done.stdout.split()
        assert int(niceness) == min(19, start + 7)
        assert idle == str(leader)  # SCHED_IDLE only when asked (here: with the leader case)
        if leader:
            assert group.read_text() == f"{min(19, start + 7)}\n"
        else:  # `shoal differ` from a terminal leaves the terminal's session alone
            assert not group.exists()
