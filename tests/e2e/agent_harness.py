"""Harness of the agent's end-to-end tests and benchmarks: a real `shoal server` subprocess (API,
controllers, embedded agent, Envoy) on free 127.0.0.1 ports with its own data dir, keep-alive
HTTP load through a Service port (`under_load`; the clients are service_load.Load), manifests
of the test app, and the leak check.

Every process is stopped by pid: the server and a standalone agent through logged_process
(SIGTERM for a graceful stop, SIGKILL when that is ignored or for crash tests), and whatever a
server left behind is found by its data dir (pods run in a directory under it, Envoy reads its
bootstrap from it), reported and killed by pid.
Imported by tests/e2e/conftest.py, sandbox_harness.py, the tests and bench/bench_*.py (which
put this directory on sys.path).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from logged_process import LoggedProcess
from service_load import Load

from shoal.api.deployment import Deployment
from shoal.api.errors import Unavailable
from shoal.api.pod import Pod
from shoal.client import Client

ROOT = Path(__file__).resolve().parents[2]
PROBE_APP = ROOT / "tests" / "apps" / "probe_app.py"
GENEROUS = 30.0  # seconds: a bound for things that take well under a second normally


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = GENEROUS, interval: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, OSError, Unavailable) as error:  # server restarting
            result, last_error = None, error
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} ({last_error or ''})")


# -- the server --------------------------------------------------------------------------------
class ShoalServer(LoggedProcess):
    """`shoal server` on a free port over `data_dir`; restartable on the same port and dir."""

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, *, agent: bool = True
    ) -> None:
        """`agent=False`: `shoal server --no-agent` (nodes join with `ShoalAgent`)."""
        super().__init__("shoal server", data_dir, "server")
        self.data_dir = data_dir
        self.agent = agent
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url)
        return self._client

    def start(self) -> None:
        command = [
            sys.executable, "-m", "shoal.cli.main", "server",
            "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{self.port}",
            "--node-name", "e2e", *(() if self.agent else ("--no-agent",)),
        ]  # fmt: skip
        self.launch(command, self.env)
        wait_for("the server's /healthz", self._healthy)
        if self.agent:
            wait_for("the embedded agent", lambda: "agent e2e ready" in self.log())

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"shoal server exited with {self.process.returncode}:\n{self.log()}"
            )
        return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`shoal --server <this> ARGS...` as a user runs it (a subprocess)."""
        command = [sys.executable, "-m", "shoal.cli.main", "--server", self.url, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- what it runs -------------------------------------------------------------------------
    def envoy_pid(self) -> int | None:
        state = self.data_dir / "agent" / "envoy" / "envoy.state.json"
        with contextlib.suppress(OSError, ValueError):
            return int(json.loads(state.read_text())["pid"])
        return None

    def envoy_admin(self) -> str:
        settings = json.loads((self.data_dir / "agent" / "agent.json").read_text())
        return f"http://127.0.0.1:{settings['envoy_admin_port']}"

    def envoy_requests_to(self, port: int) -> int:
        """Requests Envoy sent to 127.0.0.1:<port> (summed over the clusters listing it)."""
        text = httpx.get(f"{self.envoy_admin()}/clusters", timeout=5).text
        marker = f"::127.0.0.1:{port}::rq_total::"
        return sum(int(line.split(marker)[1]) for line in text.splitlines() if marker in line)

    def envoy_lists(self, port: int) -> bool:
        """Whether an Envoy cluster lists 127.0.0.1:<port> as a healthy (routable) host."""
        text = httpx.get(f"{self.envoy_admin()}/clusters", timeout=5).text
        flags = [
            line for line in text.splitlines() if f"::127.0.0.1:{port}::health_flags::" in line
        ]
        return any(line.endswith("::healthy") for line in flags)

    def leftovers(self) -> list[psutil.Process]:
        return leftovers_of(self.data_dir, exclude=self.process.pid if self.process else None)

    def pod_processes(self) -> list[psutil.Process]:
        return [p for p in self.leftovers() if "envoy" not in p.name()]


def leftovers_of(data_dir: Path, exclude: int | None = None) -> list[psutil.Process]:
    """Live processes started for a data dir (pods run in directories under it, Envoy reads
    its bootstrap from it), other than `exclude` (the server) and this process."""
    root = str(data_dir)
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        info = process.info
        if info["pid"] in (os.getpid(), exclude) or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(info["cmdline"] or ())
        if (info["cwd"] or "").startswith(root) or f" {root}/" in f" {cmdline}":
            found.append(process)
    return found


class ShoalAgent(LoggedProcess):
    """`shoal agent` on its own, joining `server`; its data dir is inside the server's, so the
    server's leftover check covers its pods and Envoy too."""

    def __init__(self, server: ShoalServer, node_name: str, *, address: str | None = None) -> None:
        """`address`: `shoal agent --address` (default: the agent's own, 127.0.0.1)."""
        super().__init__(f"shoal agent {node_name}", server.data_dir, f"agent-{node_name}")
        self.server, self.node_name, self.address = server, node_name, address
        self.data_dir = server.data_dir / f"node-{node_name}"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "shoal.cli.main", "agent", "--server", self.server.url,
            "--data-dir", str(self.data_dir), "--node-name", self.node_name,
            *(("--address", self.address) if self.address else ()),
        ]  # fmt: skip
        self.launch(command, self.server.env)
        wait_for(f"agent {self.node_name}", lambda: f"agent {self.node_name} ready" in self.log())

    def leftovers(self) -> list[psutil.Process]:
        return leftovers_of(self.data_dir, exclude=self.process.pid if self.process else None)


ServerFactory = Callable[..., ShoalServer]  # the `shoal_server_factory` fixture: (env=None)


def kill_leftovers(server: ShoalServer | Path) -> list[str]:
    """Kill by pid whatever a server left running; describe each for the failure message."""
    described = []
    found = leftovers_of(server) if isinstance(server, Path) else server.leftovers()
    for process in found:
        with contextlib.suppress(psutil.Error):
            described.append(f"{process.pid} {' '.join(process.cmdline())}")
            process.kill()
    return described


@contextlib.contextmanager
def servers(new_data_dir: Callable[[int], Path]) -> Iterator[ServerFactory]:
    """`start(env=None, agent=True)` starts one more `shoal server` over `new_data_dir(n)` (the
    n-th server, from 1). At the end each is stopped gracefully (SIGTERM) unless the test did
    it, and this fails if one did not exit cleanly or left a pod or Envoy running (killed by
    pid first). The body of the e2e server fixtures (conftest.py, sandbox_harness.py)."""
    started: list[ShoalServer] = []

    def start(env: dict[str, str] | None = None, agent: bool = True) -> ShoalServer:
        server = ShoalServer(new_data_dir(len(started) + 1), env, agent=agent)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        problems = []
        for server in started:
            server.close()
            try:
                if server.running() and (code := server.stop()) != 0:
                    problems.append(f"server exited with {code}:\n{server.log()[-3000:]}")
            except AssertionError as error:  # it ignored SIGTERM (and is killed): go on
                problems.append(f"{error}:\n{server.log()[-3000:]}")
            leaked = kill_leftovers(server)
            if leaked:
                problems.append("left running after a graceful stop: " + "; ".join(leaked))
        assert not problems, "\n".join(problems)


# -- manifests ----------------------------------------------------------------------------------
def app_deployment(
    name: str,
    *,
    replicas: int = 3,
    version: str = "v1",
    env: dict[str, str] | None = None,
    namespace: str = "default",
    readiness: dict[str, Any] | None = None,
    liveness: dict[str, Any] | None = None,
    command: list[str] | None = None,
    progress_deadline: float | None = None,
    restart_policy: str = "Always",
    grace: float = 5,
) -> dict[str, Any]:
    """A Deployment of tests/apps/probe_app.py (readiness on /healthz every 0.1 s by default)."""
    variables = {"VERSION": version, **(env or {})}
    spec: dict[str, Any] = {
        "isolation": "none",
        "command": command or [sys.executable, str(PROBE_APP)],
        "env": [{"name": k, "value": v} for k, v in variables.items()],
        "ports": [{"name": "http"}],
        "readinessProbe": readiness
        or {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 0.1},
        "terminationGracePeriodSeconds": grace,
        "restartPolicy": restart_policy,
    }
    if liveness is not None:
        spec["livenessProbe"] = liveness
    deployment: dict[str, Any] = {
        "apiVersion": "shoal/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }
    if progress_deadline is not None:
        deployment["spec"]["progressDeadlineSeconds"] = progress_deadline
    return deployment


def service(name: str, port: int, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "port": port, "targetPort": "http"},
    }


# -- observing ----------------------------------------------------------------------------------
def pods_of(client: Client, app: str, namespace: str = "default") -> list[Pod]:
    return client.list(Pod, namespace, selector=f"app={app}").items


def rollout_done(client: Client, name: str, namespace: str = "default") -> bool:
    """Complete as `shoal rollout status` sees it, and every pod of an old revision is gone
    (stopped, finalizer removed): from then on only the new version can answer."""
    deployment = client.get(Deployment, name, namespace)
    status = deployment.status
    complete = (
        status.observed_generation >= (deployment.metadata.generation or 0)
        and status.updated_replicas == deployment.spec.replicas
        and status.available_replicas == deployment.spec.replicas
        and status.replicas == deployment.spec.replicas
    )
    if not complete:
        return False
    pods = pods_of(client, name, namespace)
    template_hashes = {p.metadata.labels.get("pod-template-hash") for p in pods}
    return len(pods) == deployment.spec.replicas and len(template_hashes) == 1


def wait_rollout(
    client: Client, name: str, namespace: str = "default", timeout: float = 60
) -> None:
    wait_for(f"the rollout of {name}", lambda: rollout_done(client, name, namespace), timeout)


def get_version(port: int) -> str:
    response = httpx.get(f"http://127.0.0.1:{port}/version", timeout=5)
    response.raise_for_status()
    return str(response.headers["x-version"])


# -- load -------------------------------------------------------------------------------------
@contextlib.contextmanager
def under_load(port: int, **options: Any) -> Iterator[Load]:
    """`Load(port, **options)` running from its first answer until the block ends."""
    load = Load(port, **options).start()
    try:
        wait_for("the first answers", lambda: load.total > 0)
        yield load
    finally:
        load.stop()
