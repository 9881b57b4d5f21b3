"""What every chaos scenario shares: starting real shoal processes, killing them, waiting for
conditions, and proving that nothing was left running.

Scenarios (one module each in this package) are called by `chaos.run`; they get a `Context`
and return a `Result`. Processes are started as children of this process on free 127.0.0.1
ports, each with a log file in the scenario's work directory, and stopped by their pid. At the
end of a scenario `Context.leftovers()` lists every process that still carries the scenario's
marks (its work directory on the command line, or its server URL in the environment, which
pods and Envoy inherit): there must be none. This module does not depend on pytest: `make
chaos` runs outside it, and tests/e2e/test_chaos_short.py runs `python -m chaos.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from bench.loadgen import free_port

from shoal.client import AsyncClient

REPO = Path(__file__).resolve().parent.parent
PROBE_APP = REPO / "tests" / "apps" / "probe_app.py"
START_TIMEOUT = 30.0


@dataclass
class Result:
    """One scenario's row in the summary table, and the reasons it failed (if any)."""

    scenario: str
    load: str = "-"
    failed: str = "-"
    lost: str = "-"
    recovery: str = "-"
    problems: list[str] = field(default_factory=list)
    expect_failure: bool = False  # a test of the test: the promise must break
    seconds: float = 0.0

    def check(self, condition: bool, problem: str) -> bool:
        """Record a broken promise (the scenario goes on, to report every figure)."""
        if not condition:
            self.problems.append(problem)
            print(f"  BROKEN: {problem}", flush=True)
        return condition

    @property
    def passed(self) -> bool:
        broken = bool(self.problems)
        return broken if self.expect_failure else not broken

    @property
    def verdict(self) -> str:
        if self.expect_failure:
            return "PASS (failed as it must)" if self.problems else "FAIL (did not break)"
        return "PASS" if not self.problems else "FAIL"


def say(message: str) -> None:
    print(f"  {message}", flush=True)


class Child:
    """A process this suite started, with its output in a log file; stopped by pid."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.argv, self.log = name, argv, log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        self.pid = self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM and wait; SIGKILL when it does not exit in time. True if it exited cleanly."""
        if not self.alive:
            return True
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait()
            return False

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class Context:
    """One scenario's world: its work directory, its children, its options."""

    def __init__(self, name: str, *, short: bool, sabotage: bool, root: Path) -> None:
        self.name, self.short, self.sabotage = name, short, sabotage
        self.dir = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-", dir=root))
        self.dir.chmod(0o755)
        self.children: list[Child] = []
        self.urls: set[str] = set()
        self.extra_env: dict[str, str] = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update(extra)
        return env

    def spawn(self, name: str, argv: list[str], **env: str) -> Child:
        child = Child(name, argv, self.dir / f"{name}.log", self.env(**env))
        self.children.append(child)
        return child

    # -- shoal processes ------------------------------------------------------------------------
    def bare_api(self, data_dir: Path, port: int) -> Child:
        """`python -m shoal.server`: API + SQLite store, no controllers, no agent."""
        self.urls.add(f"http://127.0.0.1:{port}")
        argv = [sys.executable, "-m", "shoal.server", "--data-dir", str(data_dir)]
        return self.spawn("api", [*argv, "--port", str(port)])

    def server(self, data_dir: Path, port: int, *, agent: bool = True, **env: str) -> Child:
        """`shoal server`: API, store, controllers, scheduler and (by default) the agent."""
        self.urls.add(f"http://127.0.0.1:{port}")
        argv = [sys.executable, "-m", "shoal.cli.main", "server", "--data-dir", str(data_dir)]
        argv += ["--listen", f"127.0.0.1:{port}", "--node-name", "chaos"]
        return self.spawn("server", argv + ([] if agent else ["--no-agent"]), **env)

    def agent(self, url: str, data_dir: Path, **env: str) -> Child:
        argv = [sys.executable, "-m", "shoal.cli.main", "agent", "--server", url]
        argv += ["--data-dir", str(data_dir), "--node-name", "chaos"]
        return self.spawn("agent", argv, **env)

    # -- cleanup --------------------------------------------------------------------------------
    def leftovers(self) -> list[psutil.Process]:
        """Processes still carrying this scenario's marks (this process excluded)."""
        mark = str(self.dir)
        found = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            if process.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                cmdline = " ".join(process.info["cmdline"] or ())
                if mark in cmdline or process_server_url(process) in self.urls:
                    found.append(process)
        return found

    def stop_all(self) -> list[str]:
        """Stop every child gracefully (newest first), then kill and name any leftover."""
        for child in reversed(self.children):
            child.stop(60.0)  # a graceful stop drains and stops every pod first
        deadline = time.monotonic() + 5
        left = self.leftovers()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = self.leftovers()
        named = []
        for process in left:
            with contextlib.suppress(psutil.Error):
                named.append(f"pid {process.pid}: {' '.join(process.cmdline())[:120]}")
                process.kill()  # by pid: this exact process carries our marks
        return named

    def remove_dir(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def process_server_url(process: psutil.Process) -> str | None:
    try:
        return process.environ().get("SHOAL_SERVER")
    except psutil.Error:
        return None


# -- waiting ------------------------------------------------------------------------------------
def wait_healthy(url: str, child: Child, timeout: float = START_TIMEOUT) -> float:
    """Seconds until /healthz answers 200; raises with the log tail if the child died."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not child.alive:
            raise RuntimeError(f"{child.name} exited at start:\n{child.tail()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} not healthy within {timeout:g}s:\n{child.tail()}")


async def wait_for(
    check: Callable[[], Awaitable[bool]], within: float, interval: float = 0.05
) -> float | None:
    """Seconds until `check()` is true, or None after `within` s; errors count as not yet."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if await check():
                return time.monotonic() - started
        if time.monotonic() - started > within:
            return None
        await asyncio.sleep(interval)


# -- manifests ------------------------------------------------------------------------------------
def probe_template(labels: dict[str, str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod template running tests/apps/probe_app.py with this Python (isolation: none)."""
    return {
        "metadata": {"labels": labels},
        "spec": {
            "isolation": "none",
            "command": [sys.executable, str(PROBE_APP)],
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
            "ports": [{"name": "http"}],
            "readinessProbe": {
                "httpGet": {"path": "/healthz", "port": "http"},
                "periodSeconds": 1,
            },
            "terminationGracePeriodSeconds": 5,
        },
    }


def deployment(
    name: str,
    replicas: int,
    env: dict[str, str] | None = None,
    *,
    max_surge: int = 1,
    max_unavailable: int = 0,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {
        "apiVersion": "shoal/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable},
            },
            "template": probe_template(labels, env),
        },
    }


def service(name: str, port: int, selector: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector or {"app": name}, "port": port, "targetPort": "http"},
    }


# -- reading the cluster --------------------------------------------------------------------------
async def list_items(client: AsyncClient, plural: str, selector: str | None = None) -> list[Any]:
    params = {"labelSelector": selector} if selector else None
    answer = await client.request_json("GET", f"/api/v1/{plural}", params=params)
    return list(answer["items"])


def is_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("ready")) and not pod["metadata"].get("deletionTimestamp")


async def rollout_done(client: AsyncClient, name: str, version: str, replicas: int) -> bool:
    """The Deployment's pods are exactly `replicas` ready pods of `version`, nothing else."""
    pods = await list_items(client, "pods", f"app={name}")
    versions = [
        next((e["value"] for e in p["spec"].get("env", []) if e["name"] == "VERSION"), "")
        for p in pods
    ]
    return (
        len(pods) == replicas
        and all(is_ready(p) for p in pods)
        and all(v == version for v in versions)
    )


def pod_processes(urls: set[str]) -> list[psutil.Process]:
    """Pod processes (not Envoy) whose SHOAL_SERVER is one of `urls`."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if "envoy" in " ".join(process.info["cmdline"] or ())[:200]:
                continue
            if process_server_url(process) in urls:
                found.append(process)
    return found


class Cluster:
    """A `shoal server` (embedded agent, or `--no-agent` plus a separate `shoal agent`) on one
    data directory and port that survive restarts of either process."""

    def __init__(
        self, ctx: Context, *, separate_agent: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self.ctx, self.separate_agent, self.env = ctx, separate_agent, env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = ctx.dir / "data"
        self.agent_dir = ctx.dir / "agent-data" if separate_agent else self.data_dir / "agent"
        self.server: Child | None = None
        self.agent: Child | None = None
        self.client = AsyncClient(self.url)

    async def start_server(self) -> float:
        self.server = self.ctx.server(
            self.data_dir, self.port, agent=not self.separate_agent, **self.env
        )
        return await asyncio.to_thread(wait_healthy, self.url, self.server)

    def start_agent(self) -> Child:
        self.agent = self.ctx.agent(self.url, self.agent_dir, **self.env)
        return self.agent

    async def start(self) -> None:
        await self.start_server()
        if self.separate_agent:
            self.start_agent()

    async def apply(self, *docs: dict[str, Any]) -> None:
        await self.client.apply_all(list(docs))

    async def wait_rollout(self, name: str, version: str, replicas: int, within: float) -> float:
        took = await wait_for(lambda: rollout_done(self.client, name, version, replicas), within)
        if took is None:
            pods = await list_items(self.client, "pods", f"app={name}")
            states = [
                (p["metadata"]["name"], (p.get("status") or {}).get("phase"), is_ready(p))
                for p in pods
            ]
            raise RuntimeError(f"{name} not rolled out to {version} in {within:g}s: {states}")
        return took

    def admin_port(self) -> int:
        settings = json.loads((self.agent_dir / "agent.json").read_text())
        return int(settings["envoy_admin_port"])

    def envoy(self) -> psutil.Process | None:
        for process in self.ctx.leftovers():
            with contextlib.suppress(psutil.Error):
                if Path(process.cmdline()[0]).name == "envoy":
                    return process
        return None

    async def close(self) -> None:
        await self.client.close()


async def envoy_hosts(admin_port: int, cluster: str) -> set[str]:
    """`host:port` of every endpoint Envoy lists in `cluster` (its /clusters page)."""
    async with httpx.AsyncClient(timeout=2) as http:
        text = (await http.get(f"http://127.0.0.1:{admin_port}/clusters")).text
    return {
        line.split("::")[1]
        for line in text.splitlines()
        if line.startswith(f"{cluster}::") and line.count("::") >= 3 and "::cx_active::" in line
    }
