"""The differ process: `shoal differ ...` or `python -m shoal.differ ...` (flags or --config,
see `shoal.differ.config`).

Wires the receiver (`http.MirrorServer`), the `replay.Replayer` with its bounded queue, the
`aggregate.Aggregator`, the target sources (fixed addresses or `targets.PodTargetWatcher`) and,
when a server is configured, the `publish.ReportPublisher`. Prints one line
`shoal differ listening on HOST:PORT` once it accepts mirrors (a parent that passed port 0
reads the port there). SIGTERM/SIGINT: stop accepting, publish a last time, exit 0. The process
lowers its CPU priority (`nice`, default +10; a differ Pod +19 and SCHED_IDLE): comparing is
background work, the services whose requests it copies come first. `lower_priority` also sets
the niceness of the process's autogroup: with Linux autogroup scheduling each session is a
group of equal weight and a pod is a session of its own, so `nice` alone would only weigh
within the differ. SCHED_IDLE matters for latency rather than share: a task that wakes
preempts a SCHED_IDLE task at once, whatever their groups, where a nice 19 task may finish its
time slice first (a millisecond or more, the live request waiting).

Admin API on the same port (any Host not ending in `-shadow`): `GET /healthz` → ok,
`GET /stats` → counters and targets as JSON, `GET /report` → the DiffReport status as JSON.

A `--config` file is polled (every 0.5 s) and reapplied when it changes: targets, methods and
compare rules. Uses uvloop when installed, as the API server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from shoal.api.diffreport import DiffReportSpec
from shoal.client import AsyncClient
from shoal.differ.aggregate import Aggregator
from shoal.differ.compare import CompareRules
from shoal.differ.config import DifferConfig, TargetSpec, describe_invalid, parse_arguments
from shoal.differ.http import AdminAnswer, MirrorServer, UpstreamPool
from shoal.differ.publish import ReportPublisher
from shoal.differ.replay import Replayer
from shoal.differ.targets import PodTargetWatcher, Target, Targets, describe, parse_address

log = logging.getLogger("shoal.differ")
CONFIG_POLL_S = 0.5
SIDES = ("primary", "candidate")


def compare_rules(config: DifferConfig) -> CompareRules:
    compare = config.compare
    return CompareRules.build(compare.ignore_headers, compare.ignore_fields, compare.status_only)


class Differ:
    def __init__(self, config: DifferConfig, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.aggregator = Aggregator(compare_rules(config))
        self.pool = UpstreamPool(timeout_s=config.timeout_seconds)
        self.replayer = Replayer(
            self.aggregator,
            self.pool,
            methods=config.methods,
            concurrency=config.concurrency,
            queue_size=config.queue_size,
            max_rate=config.max_rate,
        )
        self.server = MirrorServer(self.replayer.offer, self.admin, config.max_body_bytes)
        self.client = AsyncClient(config.server) if config.server else None
        self.publisher = (
            ReportPublisher(
                self.client,
                self.aggregator,
                namespace=config.namespace,
                name=config.report_name,
                spec=DiffReportSpec(
                    deployment=config.deployment,
                    primary_revision=config.primary_revision,
                    candidate_revision=config.candidate_revision,
                ),
            )
            if self.client
            else None
        )
        self.addresses: dict[str, tuple[Target, ...]] = {side: () for side in SIDES}
        self.watchers: dict[str, asyncio.Task[None]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.ports: dict[str, int] = {}  # extra listeners by app port name (bound ports)

    # -- targets ------------------------------------------------------------------------------
    def _set_side(self, side: str, addresses: tuple[Target, ...]) -> None:
        self.addresses[side] = addresses
        self.replayer.set_targets(Targets(self.addresses["primary"], self.addresses["candidate"]))
        log.info("%s instances: %s", side, ", ".join(map(describe, addresses)) or "none")

    def _use_targets(self, side: str, spec: TargetSpec) -> None:
        old = self.watchers.pop(side, None)
        if old is not None:
            old.cancel()
        if spec.selector is None:
            self._set_side(side, spec.fixed())
            return
        assert self.client is not None  # the config validator requires a server for selectors
        watcher = PodTargetWatcher(
            self.client,
            self.config.namespace,
            spec.selector,
            lambda addresses: self._set_side(side, addresses),
            port_name=spec.port_name,
        )
        self.watchers[side] = asyncio.create_task(watcher.run(), name=f"differ-pods-{side}")

    def apply(self, config: DifferConfig) -> None:
        """A changed configuration: new targets, methods and compare rules from now on."""
        old, self.config = self.config, config
        for side in SIDES:
            spec: TargetSpec = getattr(config, side)
            if spec != getattr(old, side):
                self._use_targets(side, spec)
        self.replayer.set_methods(config.methods)
        self.replayer.max_rate = config.max_rate
        self.aggregator.rules = compare_rules(config)

    # -- admin --------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        status = self.aggregator.status()
        return {
            "received": self.replayer.received,
            "replayed": self.replayer.replayed,
            "queued": self.replayer.queue.qsize(),
            "compared": status.compared,
            "differing": status.differing,
            "noisy": status.noisy,
            "errors": status.errors,
            "candidateErrors": status.candidate_errors,
            "dropped": status.dropped,
            "skipped": status.skipped,
            "diffRate": status.diff_rate,
            "reportWrites": self.publisher.writes if self.publisher else 0,
            "targets": {side: [describe(t) for t in self.addresses[side]] for side in SIDES},
        }

    def admin(self, method: str, target: str) -> AdminAnswer:
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/stats":
            return 200, "application/json", orjson.dumps(self.stats())
        if path == "/report":
            return 200, "application/json", orjson.dumps(self.aggregator.status().to_json())
        return 404, "text/plain", b"not found (the differ serves /healthz, /stats, /report)\n"

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> int:
        for side in SIDES:
            self._use_targets(side, getattr(self.config, side))
        self.replayer.start()
        host, port = self.config.listen_address
        self.port = await self.server.start(host, port)
        for name, listen in sorted(self.config.ports.items()):
            extra_host, extra_port = parse_address(listen, allow_any_port=True)
            self.ports[name] = await self.server.start(extra_host, extra_port, name)
        if self.publisher is not None:
            interval = self.config.publish_interval_seconds
            self.tasks.append(asyncio.create_task(self.publisher.run(interval)))
        if self.config_path is not None:
            self.tasks.append(asyncio.create_task(self._watch_config(self.config_path)))
        return self.port

    async def _watch_config(self, path: Path) -> None:
        def signature() -> tuple[int, int, int] | None:
            try:
                found = path.stat()
            except OSError:
                return None
            return (found.st_mtime_ns, found.st_size, found.st_ino)

        seen = signature()
        while True:
            await asyncio.sleep(CONFIG_POLL_S)
            now = signature()
            if now is None or now == seen:
                continue
            seen = now
            try:
                self.apply(DifferConfig.load(path))
            except ValidationError as error:
                log.warning("%s: keeping the old configuration: %s", path, describe_invalid(error))
            except (OSError, ValueError) as error:
                log.warning("%s: keeping the old configuration: %s", path, error)
            else:
                log.info("%s: configuration reloaded", path)

    async def stop(self) -> None:
        await self.server.close()
        background = [*self.tasks, *self.watchers.values()]
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.replayer.stop()
        if self.publisher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.publisher.publish(), 2.0)
        if self.client is not None:
            await self.client.close()
        await self.pool.close()


async def run(config: DifferConfig, config_path: Path | None = None) -> None:
    """Run until SIGTERM/SIGINT."""
    differ = Differ(config, config_path)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    port = await differ.start()
    print(f"shoal differ listening on {config.listen_address[0]}:{port}", flush=True)
    for name, bound in differ.ports.items():
        log.info("mirrors of port %s on %s:%d", name, config.listen_address[0], bound)
    log.info("report %s/%s, pid %d", config.namespace, config.report_name, os.getpid())
    try:
        await stopping.wait()
    finally:
        await differ.stop()


def lower_priority(
    increment: int, idle: bool = False, autogroup: Path = Path("/proc/self/autogroup")
) -> None:
    """Add `increment` to the process's niceness and, with `idle`, switch to SCHED_IDLE. A
    session leader (a differ Pod: the agent starts every pod in a session of its own) also
    sets its session's autogroup niceness to the result, where the kernel has autogroups. Not
    otherwise: `shoal differ` run from a terminal must not lower the priority of the
    terminal's whole session. Failures of the extras are harmless: nice still applies."""
    if increment > 0:
        niceness = os.nice(increment)
        if os.getsid(0) == os.getpid():
            with contextlib.suppress(OSError):
                autogroup.write_text(f"{niceness}\n")
    if idle:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> None:
    config, config_path = parse_arguments(argv)
    lower_priority(config.nice, config.idle)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s differ %(message)s"
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run(config, config_path))
