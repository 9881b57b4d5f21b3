"""The processes the differ benchmarks run (bench/bench_differ.py), each stopped by pid: fast
upstreams in a child process (several HTTP listeners answering ~2 KB JSON bodies with a random
`requestId`, the noise every comparison must parse and walk) and a `shoal differ`, either
unbounded or with a differ Pod's bounds and niceness.

The upstreams' child process is this file: `python bench/differ_processes.py v1,v1,v2` prints
its ports as a JSON list and serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import cast

import httpx
import uvloop

from shoal.controllers.parallel_run import (
    BACKGROUND_WRAPPER,
    REPLAY_CONCURRENCY,
    REPLAY_QUEUE,
    REPLAY_RATE,
)

ITEMS = 24  # ~2 KB of JSON per answer


def pin(cpu: int) -> None:
    """Pin the calling process (and the children it starts afterwards) to one CPU."""
    os.sched_setaffinity(0, {cpu})


def stop(process: subprocess.Popen[bytes]) -> None:
    """By pid: SIGTERM, up to 10 s to exit, then SIGKILL."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


# -- fast upstreams (a child process: this file, with versions v1,v1,v2) -------------------
def answer_template(version: str = "v1") -> bytes:
    items = [
        {"id": i, "name": f"item-{i}", "price": 10 + i * 1.25, "tags": ["a", "b"], "stock": i * 3}
        for i in range(ITEMS)
    ]
    body = json.dumps({"requestId": "#" * 32, "sku": "sku-1", "items": items}).encode()
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-version: {version}\r\n\r\n"
    ).encode()
    return head + body


class _FastUpstream(asyncio.Protocol):
    """Answers every GET with the template and a fresh random requestId (uvloop, no parsing
    beyond finding the end of each request head)."""

    def __init__(self, template: bytes) -> None:
        self.template = template
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.buffer = self.buffer[end + 4 :]  # GETs only: no request bodies
            self.transport.write(self.template.replace(b"#" * 32, os.urandom(16).hex().encode()))


async def serve_upstreams(versions: list[str]) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for version in versions:
        template = answer_template(version)
        servers.append(
            await loop.create_server(lambda t=template: _FastUpstream(t), "127.0.0.1", 0)  # type: ignore[misc]
        )
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()


@contextlib.contextmanager
def upstreams_process(versions: str, background: bool = False) -> Iterator[list[int]]:
    """Fast upstreams in a child process (inheriting this process's CPU affinity); with
    `background`, in a session of its own under the comparison Pods' wrapper (nice 19, its
    autogroup too), as ParallelRun runs its comparison instances."""
    args = [sys.executable, __file__, versions]
    if background:
        args = [*BACKGROUND_WRAPPER, *args]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, start_new_session=background)
    try:
        assert process.stdout is not None
        ports: list[int] = json.loads(process.stdout.readline())
        yield ports
    finally:
        stop(process)


# -- the differ ------------------------------------------------------------------------------
@contextlib.contextmanager
def differ_process(
    port: int,
    primaries: list[int],
    candidates: list[int],
    cpu: int | None,
    *,
    nice: int = 10,
    as_pod: bool = False,
) -> Iterator[tuple[str, int]]:
    """A `shoal differ`; `as_pod`: with a differ Pod's bounds and niceness, in a session of its
    own (so it lowers its autogroup as the Pod does)."""
    args = [sys.executable, "-m", "shoal.differ", f"--listen=127.0.0.1:{port}", f"--nice={nice}"]
    args += ["--deployment=shop"]
    if as_pod:
        args += [f"--concurrency={REPLAY_CONCURRENCY}", f"--queue-size={REPLAY_QUEUE}", "--idle"]
        args += [f"--max-rate={REPLAY_RATE:g}"]
    else:
        args += ["--concurrency=64", "--queue-size=2000"]
    args += [f"--primary=127.0.0.1:{p}" for p in primaries]
    args += [f"--candidate=127.0.0.1:{p}" for p in candidates]
    args += ["--ignore-header=x-version", "--ignore-field=version"]
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: pin(cpu)) if cpu is not None else None,  # noqa: PLW1509 - affinity only
        start_new_session=as_pod,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if "listening" not in line:
            raise RuntimeError(f"differ did not start: {line!r}")
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop(process)


def differ_stats(url: str) -> dict[str, float]:
    stats: dict[str, float] = httpx.get(f"{url}/stats", timeout=5).json()
    return stats


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_upstreams(sys.argv[1].split(",")))
