"""Parallel run end to end with real processes: an API server, two primary instances and one
candidate of tests/apps/probe_app.py, a real Envoy built with shoal.agent.envoy (live traffic to
the primaries, GET/HEAD mirrored at 100 % to the differ cluster) and a `shoal differ` process.

- identical candidate (only the random requestId differs): diff rate 0, requestId learned as
  noise, the gate promotes;
- candidate rounding the price differently: a difference at exactly `price` with an example,
  the gate aborts naming `price`; every live answer still came from a primary (x-version);
- POST is not mirrored: the candidate receives none;
- the differ killed (SIGKILL, by pid) in the middle of live traffic: no live request fails.

Every process is stopped by pid in the fixtures' finalisers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal.agent.envoy import (
    Destination,
    Endpoint,
    EnvoySupervisor,
    Mirror,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
    XdsWriter,
    apply_and_confirm,
)
from shoal.api.diffreport import DiffReport, report_name
from shoal.api.errors import NotFound
from shoal.api.parallelrun import ParallelRunSettings
from shoal.client import AsyncClient
from shoal.controllers.strategies.parallel import GateAction, decide

pytestmark = pytest.mark.e2e

PROBE_APP = Path(__file__).resolve().parent.parent / "apps" / "probe_app.py"
GENEROUS_S = 20.0
CANDIDATE_HASH = "cand1"
REPORT = report_name("shop", CANDIDATE_HASH)
# A bare API server that also serves DiffReports (the kind registers itself on import).
SERVER_CODE = (
    "import sys, shoal.api.diffreport; from shoal.server.__main__ import main; main(sys.argv[1:])"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_by_pid(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + GENEROUS_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args!r} exited at start"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], **env: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.PIPE)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        stop_by_pid(process)


@dataclass
class ParallelRun:
    server: str
    live: str  # the Envoy listener
    primaries: list[int]
    candidate: int
    differ: subprocess.Popen[bytes]
    differ_port: int


def probe(spawn: Callable[..., subprocess.Popen[bytes]], version: str, **env: str) -> int:
    port = free_port()
    process = spawn([sys.executable, str(PROBE_APP)], PORT=str(port), VERSION=version, **env)
    wait_http(f"http://127.0.0.1:{port}/healthz", process)
    return port


async def start_parallel_run(
    spawn: Callable[..., subprocess.Popen[bytes]], root: Path, rounding: str
) -> AsyncIterator[ParallelRun]:
    server_port = free_port()
    server = spawn(
        [sys.executable, "-c", SERVER_CODE, f"--data-dir={root / 'data'}", f"--port={server_port}"]
    )
    server_url = f"http://127.0.0.1:{server_port}"
    wait_http(f"{server_url}/healthz", server)
    primaries = [probe(spawn, "v1", RANDOM_FIELD="1") for _ in range(2)]
    candidate = probe(spawn, "v2", RANDOM_FIELD="1", PRICE_ROUNDING=rounding)
    differ_port = free_port()
    differ = spawn(
        [
            sys.executable,
            "-m",
            "shoal.differ",
            f"--listen=127.0.0.1:{differ_port}",
            f"--server={server_url}",
            "--deployment=shop",
            f"--candidate-revision={CANDIDATE_HASH}",
            *(f"--primary=127.0.0.1:{port}" for port in primaries),
            f"--candidate=127.0.0.1:{candidate}",
            "--ignore-header=x-version",  # the versions say who they are, on purpose
            "--ignore-field=version",
        ]
    )
    assert differ.stdout is not None
    assert b"listening" in differ.stdout.readline()
    admin_port = free_port()
    writer = XdsWriter(root / "envoy")
    supervisor = EnvoySupervisor(
        bootstrap=writer.write_bootstrap(
            node_id="e2e", node_cluster="shoal", admin_port=admin_port
        ),
        admin_port=admin_port,
        state_file=root / "envoy.state.json",
        log_file=root / "envoy.log",
    )
    await supervisor.start()
    try:
        live_port = free_port()
        listener = ServiceListener(
            "default.shop",
            live_port,
            (Route(Destination.single("default.shop.primary")),),
            mirror=Mirror("differ", 100.0),
        )
        clusters = (
            UpstreamCluster(
                "default.shop.primary", tuple(Endpoint("127.0.0.1", p) for p in primaries)
            ),
            UpstreamCluster("differ", (Endpoint("127.0.0.1", differ_port),)),
        )
        await apply_and_confirm(writer, supervisor.admin, RoutingTable((listener,), clusters))
        yield ParallelRun(
            server_url, f"http://127.0.0.1:{live_port}", primaries, candidate, differ, differ_port
        )
    finally:
        await supervisor.stop()


@pytest.fixture
async def same(spawn: Any, tmp_path: Path) -> AsyncIterator[ParallelRun]:
    async for run in start_parallel_run(spawn, tmp_path, rounding="half"):
        yield run


@pytest.fixture
async def rounded_up(spawn: Any, tmp_path: Path) -> AsyncIterator[ParallelRun]:
    async for run in start_parallel_run(spawn, tmp_path, rounding="up"):
        yield run


async def live_traffic(run: ParallelRun, paths: list[str], method: str = "GET") -> None:
    """Send requests through Envoy; every answer must be a primary's."""
    async with httpx.AsyncClient(base_url=run.live, timeout=10) as client:
        for path in paths:
            answer = await client.request(method, path, content=b"{}" if method == "POST" else None)
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-version"] == "v1", "a live answer came from the candidate"


async def report_with(run: ParallelRun, compared: int) -> DiffReport:
    async with AsyncClient(run.server) as client:
        deadline = time.monotonic() + GENEROUS_S
        while True:
            try:
                report = await client.get(DiffReport, REPORT)
                if report.status.compared >= compared:
                    return report
            except NotFound:
                pass
            assert time.monotonic() < deadline, "the differ did not report enough samples"
            await asyncio.sleep(0.1)


async def requests_seen(port: int) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        answer: dict[str, Any] = (await client.get(f"http://127.0.0.1:{port}/__requests")).json()
        return answer


SETTINGS = ParallelRunSettings.from_json({"minSamples": 50, "maxDiffRate": 0.01})
PATHS = ["/price"] * 40 + [f"/items/{n}" for n in range(20)]


async def test_identical_candidate_learns_noise_and_promotes(same: ParallelRun) -> None:
    await live_traffic(same, PATHS)
    report = await report_with(same, len(PATHS))
    status = report.status
    assert status.compared == len(PATHS)
    assert status.differing == 0 and status.diff_rate == 0.0
    by_endpoint = {e.endpoint: e for e in status.endpoints}
    assert set(by_endpoint) == {"GET /price", "GET /items/{id}"}
    assert [n.path for n in by_endpoint["GET /price"].noise] == ["requestId"]
    assert by_endpoint["GET /price"].fields == []
    now = datetime.now(UTC)
    assert decide(SETTINGS, report, now, now).action is GateAction.PROMOTE
    shadow = (await requests_seen(same.candidate))["shadow"]
    assert shadow["GET"] == len(PATHS)  # every replay to the candidate was marked a copy


async def test_changed_rounding_is_a_difference_at_price(rounded_up: ParallelRun) -> None:
    await live_traffic(rounded_up, PATHS)
    report = await report_with(rounded_up, len(PATHS))
    by_endpoint = {e.endpoint: e for e in report.status.endpoints}
    price = by_endpoint["GET /price"]
    assert (price.compared, price.differing) == (40, 40)
    assert [f.path for f in price.fields] == ["price"]
    example = price.fields[0].example
    assert example is not None
    assert (example.primary, example.candidate) == ("19.99", "20.0")
    assert '"price": 20.0' in example.candidate_body
    assert by_endpoint["GET /items/{id}"].differing == 0  # no price there
    now = datetime.now(UTC)
    decision = decide(SETTINGS, report, now, now)
    assert decision.action is GateAction.ABORT
    assert decision.top_fields == ("price",) and "price (GET /price" in decision.reason


async def test_post_is_not_mirrored(same: ParallelRun) -> None:
    await live_traffic(same, ["/orders"] * 10, method="POST")
    await live_traffic(same, ["/price"] * 5)  # mirrored; they mark when the copies are done
    await report_with(same, 5)
    candidate = await requests_seen(same.candidate)
    assert candidate.get("POST", 0) == 0 and candidate["GET"] == 5
    primaries = [await requests_seen(port) for port in same.primaries]
    assert sum(seen.get("POST", 0) for seen in primaries) == 10  # served live, once each
    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"http://127.0.0.1:{same.differ_port}/stats")).json()
    assert stats["received"] == 5 and stats["skipped"] == 0


async def test_killing_the_differ_fails_no_live_request(same: ParallelRun) -> None:
    failures: list[str] = []
    served = {"before": 0, "after": 0}
    killed = asyncio.Event()
    stop = asyncio.Event()

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=same.live, timeout=10) as client:
            while not stop.is_set():
                try:
                    answer = await client.get("/price")
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                    continue
                if answer.status_code != 200 or answer.headers.get("x-version") != "v1":
                    failures.append(f"{answer.status_code} {answer.headers.get('x-version')}")
                served["after" if killed.is_set() else "before"] += 1

    clients = [asyncio.create_task(client_loop()) for _ in range(4)]
    try:
        await report_with(same, 20)  # the differ is comparing live copies
        os.kill(same.differ.pid, signal.SIGKILL)
        await asyncio.to_thread(same.differ.wait, 10)
        killed.set()
        deadline = time.monotonic() + GENEROUS_S
        while served["after"] < 300:
            assert time.monotonic() < deadline, "live traffic stalled after the kill"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    assert same.differ.returncode == -signal.SIGKILL
    assert failures == []
    assert served["before"] >= 20 and served["after"] >= 300


def test_the_differ_process_reports_its_port_and_stops_cleanly_on_sigterm(
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    differ = spawn(
        [
            sys.executable,
            "-m",
            "shoal.differ",
            "--listen=127.0.0.1:0",
            "--deployment=shop",
            "--primary=127.0.0.1:9",
            "--candidate=127.0.0.1:9",
        ]
    )
    assert differ.stdout is not None
    line = differ.stdout.readline().decode()
    assert line.startswith("shoal differ listening on 127.0.0.1:")
    port = int(line.rsplit(":", 1)[1])
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text == "ok\n"
    mirrored = httpx.get(f"http://127.0.0.1:{port}/x", headers={"host": "shop-shadow"}, timeout=5)
    assert mirrored.status_code == 202
    os.kill(differ.pid, signal.SIGTERM)
    assert differ.wait(timeout=10) == 0
