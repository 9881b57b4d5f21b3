"""`shoal logs` and `shoal top` end to end: the CLI -> the API server -> the pod's node agent
(its own HTTP API, at Node.status.agentPort) -> the pod's log files and usage counters; and
node capacity: a pod that requests more than the node has stays Pending, says why, and has no
logs to show.

One `shoal server` (embedded agent) for the module; pods print numbered lines (`talker`),
crash after a line (`crasher`, for --previous), or ask for too much (`greedy`). `shoal logs
-f` runs as a child process, read line by line and stopped by its pid.
"""

from __future__ import annotations

import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from agent_harness import ShoalServer, app_deployment, pods_of, wait_for
from sandbox_harness import SYSTEM_PYTHON, sandboxed, searchable_dir, servers_under, why_no_sandbox
from typer.testing import CliRunner

from shoal.api.event import Event
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.cli.main import app as shoal_cli

pytestmark = pytest.mark.e2e
SANDBOX = why_no_sandbox() is None

TALK = (
    "import itertools, time\n"
    "for n in itertools.count():\n"
    "    print('tick', n, flush=True)\n"
    "    time.sleep(0.05)\n"
)
# Each run lasts 2 s: a restarted run's Running status (its pid) is written once the run has
# lasted the second its start write lingers (podwrites.LINGER_SECONDS), or with its exit.
CRASH = (
    "import os, time\n"
    "print('run of pid', os.getpid(), flush=True)\n"
    "time.sleep(2.0)\n"
    "raise SystemExit(3)\n"
)


@pytest.fixture(scope="module")
def server() -> Iterator[ShoalServer]:
    with searchable_dir() as base, servers_under(base) as start:
        yield start()


def script(name: str, code: str, *, sandbox: bool = False, **resources: Any) -> dict[str, Any]:
    deployment = sandboxed(
        app_deployment(name, replicas=1),
        [SYSTEM_PYTHON, "-c", code],
        isolation=None if sandbox else "none",
    )
    spec = deployment["spec"]["template"]["spec"]
    del spec["readinessProbe"]
    spec["ports"] = []
    spec["terminationGracePeriodSeconds"] = 1
    if resources:
        spec["resources"] = resources
    return deployment


def running_pod(server: ShoalServer, app: str) -> Pod:
    def found() -> Pod | None:
        pods = [p for p in pods_of(server.client, app) if p.status.pid is not None]
        return pods[0] if pods else None

    pod: Pod = wait_for(f"a running pod of {app}", found)
    return pod


def shoal(server: ShoalServer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(shoal_cli, ["--server", server.url, *args])
    return result.exit_code, result.output


def ticks(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^tick (\d+)$", text, re.MULTILINE)]


def test_logs_tail_and_follow_without_gaps(server: ShoalServer) -> None:
    server.client.apply_all([script("talker", TALK)])
    pod = running_pod(server, "talker").metadata.name
    wait_for("ten lines", lambda: len(ticks(shoal(server, "logs", pod)[1])) >= 10)
    code, output = shoal(server, "logs", pod, "--tail", "3")
    assert code == 0 and len(ticks(output)) == 3
    assert ticks(output) == list(range(ticks(output)[0], ticks(output)[0] + 3))

    command = [sys.executable, "-m", "shoal.cli.main", "--server", server.url]
    follower = subprocess.Popen(
        [*command, "logs", pod, "-f", "--tail", "2"], stdout=subprocess.PIPE, text=True
    )
    try:
        seen = read_lines(follower, 30)
    finally:
        follower.terminate()  # by pid: Popen signals exactly the child it started
        follower.wait(timeout=10)
    numbers = ticks("".join(seen))
    assert len(numbers) == 30 and numbers == list(range(numbers[0], numbers[0] + 30))


def read_lines(process: subprocess.Popen[str], count: int, timeout: float = 30) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
    return lines


def test_previous_shows_the_run_before_the_restart(server: ShoalServer) -> None:
    server.client.apply_all([script("crasher", CRASH)])

    def restarted() -> Pod | None:
        pods = [p for p in pods_of(server.client, "crasher") if p.status.restart_count >= 1]
        return pods[0] if pods and pods[0].status.pid else None

    pod = wait_for("a restart", restarted)
    code, previous = shoal(server, "logs", pod.metadata.name, "--previous")
    assert code == 0 and re.fullmatch(r"run of pid \d+\n", previous), previous
    code, current = shoal(server, "logs", pod.metadata.name)
    assert code == 0 and previous not in current  # another run, another process


def test_a_followed_log_ends_when_its_pod_is_deleted(server: ShoalServer) -> None:
    server.client.apply_all([script("brief", TALK)])
    pod = running_pod(server, "brief").metadata.name
    command = [sys.executable, "-m", "shoal.cli.main", "--server", server.url]
    follower = subprocess.Popen([*command, "logs", pod, "-f"], stdout=subprocess.PIPE, text=True)
    try:
        assert read_lines(follower, 2)
        server.client.request_json("DELETE", "/api/v1/namespaces/default/deployments/brief")
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(timeout=10)


@pytest.mark.skipif(not SANDBOX, reason="no sandbox here (top of a plain pod is covered)")
def test_top_shows_sandboxed_and_plain_pods_and_the_node(server: ShoalServer) -> None:
    limits = {"limits": {"cpu": "200m", "memory": "64Mi", "pids": 16}}
    server.client.apply_all([script("boxed", TALK, sandbox=True, **limits), script("plain", TALK)])
    running_pod(server, "boxed")
    running_pod(server, "plain")

    def rows() -> dict[str, list[str]]:
        code, output = shoal(server, "top", "pods")
        assert code == 0, output
        lines = [line.split() for line in output.splitlines()[1:]]
        return {cells[0].rsplit("-", 2)[0]: cells for cells in lines}

    table = wait_for("both pods in top", lambda: {"boxed", "plain"} <= set(rows()) and rows())
    boxed, plain = table["boxed"], table["plain"]
    assert boxed[1].endswith("m") and boxed[3].endswith("Mi")  # CPU(cores), MEMORY
    assert boxed[2].endswith("%") and boxed[4].endswith("%")  # shares of its limits
    assert boxed[5].endswith("/16")
    assert plain[2] == "-" and plain[4] == "-" and plain[5] == "1"  # no limits; one process
    code, output = shoal(server, "top", "nodes")
    assert code == 0 and output.splitlines()[1].split()[0] == "e2e", output
    assert "cpu 200m" in output  # the limit stands in for the missing request


def test_a_pod_asking_more_than_the_node_has_stays_pending(server: ShoalServer) -> None:
    node = server.client.get(Node, "e2e")
    assert node.status.agent_port is not None
    too_much = {"limits": {"memory": "100Ti"}}  # no request: the limit is the request
    server.client.apply_all([script("greedy", TALK, **too_much)])
    pod: Pod = wait_for("the greedy pod", lambda: (pods_of(server.client, "greedy") or [None])[0])
    name = pod.metadata.name

    def failed_scheduling() -> list[Event]:
        events = server.client.list(Event, "default").items
        return [
            e for e in events if e.involved_object.name == name and e.reason == "FailedScheduling"
        ]

    [event, *_] = wait_for("a FailedScheduling event", failed_scheduling)
    assert "insufficient memory" in (event.message or "")
    time.sleep(1.0)
    pod = server.client.get(Pod, name)
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    code, output = shoal(server, "logs", name)
    assert code != 0 and "not scheduled" in output and "insufficient memory" in output
