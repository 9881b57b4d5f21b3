"""What the sandbox end-to-end tests (tests/e2e/test_sandbox_*.py, test_logs_top.py) and
bench/bench_sandbox.py add to `agent_harness`: servers and a test app that a sandboxed pod can
reach, and manifests of sandboxed pods.

A sandboxed pod runs as an unprivileged uid with a private /tmp, so pytest's tmp_path (under
/tmp, below a 0700 directory) is neither visible nor searchable from inside. The servers' data
dirs and the app therefore live in a 0755 directory under /var/tmp (the FHS's other temporary
directory, which the sandbox shows read-only), removed at the end. The project's virtualenv
may sit under a 0700 home as well, so sandboxed pods run the system python3 (the app is
stdlib-only). Each server is stopped gracefully at the end; the fixture fails if it did not
exit cleanly or left any process behind (killed by pid first).
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from agent_harness import PROBE_APP, ServerFactory, ShoalServer, app_deployment, servers

from shoal.agent.sandbox.availability import sandbox_available

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
SYSTEM_PYTHON = shutil.which("python3", path=SYSTEM_PATH) or "python3"
SHARED_TEMP = Path("/var/tmp")
PRETEND_UNAVAILABLE = "SHOAL_TEST_SANDBOX_UNAVAILABLE"


def why_no_sandbox() -> str | None:
    """None when this machine can run sandboxed pods, else the reason (tests skip with it)."""
    available, why = sandbox_available()
    if available and SHARED_TEMP.is_dir():
        return None
    return why if not available else f"{SHARED_TEMP} does not exist"


@contextlib.contextmanager
def searchable_dir(prefix: str = "shoal-e2e-") -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=SHARED_TEMP))
    try:
        base.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def requires_sandbox() -> pytest.MarkDecorator:
    """The mark that skips a test (or a module: `pytestmark`) where sandboxed pods cannot run,
    with the reason."""
    why = why_no_sandbox()
    return pytest.mark.skipif(why is not None, reason=f"no sandbox here: {why}")


def app_fixtures() -> tuple[Any, Any]:
    """A test module's fixtures `base` (a searchable dir, removed at the end) and `app` (the
    probe app installed in it), both module-scoped: `base, app = app_fixtures()` there.
    (Imported fixtures would shadow the test arguments of the same name.)"""

    @pytest.fixture(scope="module")
    def base() -> Iterator[Path]:
        with searchable_dir() as directory:
            yield directory

    @pytest.fixture(scope="module")
    def app(base: Path) -> Path:
        return install_app(base)

    return base, app


def install_app(base: Path) -> Path:
    """tests/apps/probe_app.py copied where any uid can read it."""
    directory = base / "app"
    directory.mkdir(mode=0o755, exist_ok=True)
    target = directory / PROBE_APP.name
    shutil.copyfile(PROBE_APP, target)
    target.chmod(0o644)
    return target


def sandboxed(
    deployment: dict[str, Any],
    command: list[str],
    *,
    limits: dict[str, Any] | None = None,
    isolation: str | None = None,
) -> dict[str, Any]:
    """`deployment` (from agent_harness.app_deployment) running `command` with the system
    python, `isolation` absent (the default: sandbox) unless given, and resource limits."""
    spec = deployment["spec"]["template"]["spec"]
    spec.pop("isolation", None)
    if isolation is not None:
        spec["isolation"] = isolation
    spec["command"] = command
    if limits:
        spec["resources"] = {"limits": limits}
    return deployment


def app_in_sandbox(
    name: str, app: Path, *, limits: dict[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    """A Deployment of the probe app, sandboxed (options as agent_harness.app_deployment)."""
    limits = limits if limits is not None else {"cpu": "500m", "memory": "128Mi", "pids": 64}
    return sandboxed(app_deployment(name, **options), [SYSTEM_PYTHON, str(app)], limits=limits)


# A parent that keeps forking children which allocate `argv[1]` bytes (each is OOM-killed when
# that is over the pod's memory limit), and says how many were killed (SIGKILL) so far.
OOM_LOOP = (
    "import os, sys\n"
    "size, kills = int(sys.argv[1]), 0\n"
    "for round in range(100000):\n"
    "    child = os.fork()\n"
    "    if child == 0:\n"
    "        block = b'x' * size\n"
    "        os._exit(0)\n"
    "    _, status = os.waitpid(child, 0)\n"
    "    kills += os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9\n"
    "    if round % 5 == 0:\n"
    "        print('rounds', round + 1, 'oom kills', kills, flush=True)\n"
)
# The control for OOM_LOOP: the same CPU limit spent without touching memory.
CPU_BURN = "while True:\n    pass\n"


def script_deployment(
    name: str, code: str, argument: str, limits: dict[str, Any], *, isolation: str | None = None
) -> dict[str, Any]:
    """A Deployment of one Python script run by the system python (no probes, no ports)."""
    deployment = sandboxed(
        app_deployment(name, replicas=1),
        [SYSTEM_PYTHON, "-c", code, argument],
        limits=limits,
        isolation=isolation,
    )
    spec = deployment["spec"]["template"]["spec"]
    del spec["readinessProbe"]
    spec["ports"] = []
    spec["terminationGracePeriodSeconds"] = 1
    return deployment


def servers_under(base: Path) -> contextlib.AbstractContextManager[ServerFactory]:
    """`start(env=None)` starts one more `shoal server` with a searchable data dir under `base`
    (stopped and checked for leftovers at the end: `agent_harness.servers`)."""

    def new_data_dir(_: int) -> Path:
        data_dir = Path(tempfile.mkdtemp(prefix="shoal-", dir=base))
        data_dir.chmod(0o755)
        return data_dir

    return servers(new_data_dir)


def pod_log(server: ShoalServer, pod: str, **params: str) -> str:
    """A pod's log through the API server (the route `shoal logs` uses)."""
    answer = httpx.get(
        f"{server.url}/api/v1/namespaces/default/pods/{pod}/log", params=params, timeout=30
    )
    answer.raise_for_status()
    return answer.text


# -- latency under a paced load -----------------------------------------------------------------
def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


@dataclass
class PacedLoad:
    """`clients` keep-alive clients (threads), each sending GET `path` through 127.0.0.1:`port`
    every `interval` seconds (an open-ish loop: a late answer does not slow the schedule down
    to hide itself); every request's latency is recorded, every failure counted."""

    port: int
    clients: int = 4
    interval: float = 0.02
    path: str = "/version"
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self, seconds: float) -> PacedLoad:
        stop = threading.Event()
        threads = [
            threading.Thread(target=self._client, args=(stop, index), daemon=True)
            for index in range(self.clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        return self

    def _client(self, stop: threading.Event, index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        next_at = time.monotonic() + index * self.interval / self.clients
        while not stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at = max(next_at + self.interval, time.monotonic() - self.interval)
            started = time.perf_counter()
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                continue
            self.latencies.append(time.perf_counter() - started)
            if response.status != 200:
                self.failures.append(f"HTTP {response.status}")
        connection.close()

    def p99_ms(self) -> float:
        return 1000 * percentile(self.latencies, 0.99)


def pod_tree(pid: int) -> list[psutil.Process]:
    """A pod's processes: its leader (the handle's pid) and everything below it."""
    leader = psutil.Process(pid)
    return [leader, *leader.children(recursive=True)]


def signal_tree(pid: int, signum: int) -> None:
    for process in pod_tree(pid):
        with contextlib.suppress(psutil.Error):
            process.send_signal(signum)


@dataclass
class Interference:
    """A neighbour's p99 in alternating windows without and with a noisy pod running (the
    noisy pod is paused with SIGSTOP in between): on a shared machine, other load shifts both
    sides of a pair alike, so the median of the per-pair ratios says what the noisy pod costs."""

    alone_ms: list[float] = field(default_factory=list)
    crowded_ms: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def ratio(self) -> float:
        ratios = sorted(c / a for a, c in zip(self.alone_ms, self.crowded_ms, strict=True) if a)
        return ratios[len(ratios) // 2] if ratios else 0.0

    def describe(self) -> str:
        def median(values: list[float]) -> float:
            return sorted(values)[len(values) // 2] if values else 0.0

        return (
            f"p99 alone {median(self.alone_ms):.2f} ms, with the noisy pod "
            f"{median(self.crowded_ms):.2f} ms (medians of {len(self.alone_ms)} windows), "
            f"median ratio {self.ratio:.2f}x"
        )


def measure_interference(
    port: int, noisy_pid: int, *, pairs: int = 6, seconds: float = 2.0
) -> Interference:
    """Alternate windows of a paced load on `port` with the pod of `noisy_pid` paused, then
    running; the noisy pod is left running."""
    figures = Interference()
    try:
        for _ in range(pairs):
            signal_tree(noisy_pid, signal.SIGSTOP)
            alone = PacedLoad(port).run(seconds)
            signal_tree(noisy_pid, signal.SIGCONT)
            crowded = PacedLoad(port).run(seconds)
            figures.alone_ms.append(alone.p99_ms())
            figures.crowded_ms.append(crowded.p99_ms())
            figures.failures += len(alone.failures) + len(crowded.failures)
    finally:
        signal_tree(noisy_pid, signal.SIGCONT)
    return figures
