"""Resource limits of sandboxed pods through the whole system (issue 7's acceptance), on one
`shoal server` with its embedded agent and Envoy:

- a process allocating twice its memory limit is OOM-killed, reported as
  `lastState.reason: OOMKilled`, and restarted by its restart policy (its previous run's log
  is still readable through `shoal logs --previous`'s route);
- a neighbour pod's p99 latency under a paced load through its Service, in alternating windows
  with an OOM-looping pod paused and running (children allocating twice its limit, killed one
  after the other): asserted with a GENEROUS bound here, as machines running tests are noisy;
  bench/bench_sandbox.py prints the figure against the issue's goal (< 20 %), with a CPU-only
  noisy pod beside it to tell the cost of OOM kills from the cost of the CPU they use;
- a bounded fork bomb is stopped by the pids limit (fork fails with EAGAIN at the limit,
  `shoal top pods` shows pids at the limit) while the neighbour keeps answering; deleting it
  leaves none of its processes behind, not even the daemon it detached with setsid().
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from agent_harness import ShoalServer, free_port, pods_of, service, wait_for, wait_rollout
from sandbox_harness import (
    OOM_LOOP,
    PacedLoad,
    app_in_sandbox,
    install_app,
    measure_interference,
    pod_log,
    script_deployment,
    searchable_dir,
    servers_under,
    why_no_sandbox,
)
from typer.testing import CliRunner

from shoal.api.event import Event
from shoal.api.pod import Pod
from shoal.cli.main import app as shoal_cli

NO_SANDBOX = why_no_sandbox()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(NO_SANDBOX is not None, reason=f"no sandbox here: {NO_SANDBOX}"),
]
MI = 2**20
# The generous bound of the e2e test: beside the OOM loop, the neighbour's median p99 stays
# under three times its own plus 30 ms. What it guards against is a broken memory isolation
# (a host under memory pressure: swapping, the neighbour killed, seconds of latency); on a
# shared 2-CPU machine the loop's CPU alone moves a few-ms p99 by a few ms, which is what
# bench/bench_sandbox.py reports against the goal (< 1.2x), beside a CPU-only control.
P99_FACTOR, P99_SLACK_MS = 3.0, 30.0

ALLOCATE = (
    "import sys, time\n"
    "print('allocating', int(sys.argv[1]) // 2**20, 'MiB', flush=True)\n"
    "block = b'x' * int(sys.argv[1])\n"
    "print('still alive', flush=True)\n"
    "time.sleep(300)\n"
)
# A bounded fork bomb: one setsid() daemon, then children that sleep, until fork is refused.
FORK_BOMB = (
    "import os, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    time.sleep(600)\n"
    "    os._exit(0)\n"
    "children = 0\n"
    "try:\n"
    "    for _ in range(5000):\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(600)\n"
    "            os._exit(0)\n"
    "        children += 1\n"
    "except OSError as error:\n"
    "    print('fork refused after', children, 'children:', error.strerror, flush=True)\n"
    "else:\n"
    "    print('fork never refused', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    with searchable_dir() as directory:
        yield directory


@pytest.fixture(scope="module")
def server(base: Path) -> Iterator[ShoalServer]:
    with servers_under(base) as start:
        yield start()


@pytest.fixture(scope="module")
def neighbour(server: ShoalServer, base: Path) -> int:
    """A sandboxed web pod behind a Service; its Service port."""
    port = free_port()
    limits = {"cpu": "1", "memory": "128Mi", "pids": 64}
    deployment = app_in_sandbox("neighbour", install_app(base), replicas=1, limits=limits)
    server.client.apply_all([deployment, service("neighbour", port)])
    wait_rollout(server.client, "neighbour")
    return port


def only_pod(server: ShoalServer, app: str) -> Pod:
    [pod] = pods_of(server.client, app)
    return pod


def delete_and_wait(server: ShoalServer, app: str) -> None:
    server.client.request_json("DELETE", f"/api/v1/namespaces/default/deployments/{app}")
    wait_for(f"the pods of {app} to go", lambda: not pods_of(server.client, app))


def test_a_process_over_its_memory_limit_is_oom_killed_and_restarted(
    server: ShoalServer,
) -> None:
    limit = 64 * MI
    server.client.apply_all(
        [script_deployment("hog", ALLOCATE, str(2 * limit), {"memory": "64Mi", "cpu": "500m"})]
    )

    def restarted_after_oom() -> Pod | None:
        pods = pods_of(server.client, "hog")
        if not pods:
            return None
        pod = pods[0]
        last = pod.status.last_state
        oom = last is not None and last.reason == "OOMKilled"
        return pod if oom and pod.status.restart_count >= 1 else None

    pod = wait_for("an OOM kill and a restart", restarted_after_oom, timeout=60)
    assert pod.status.last_state is not None and pod.status.last_state.signal == 9
    previous = pod_log(server, pod.metadata.name, previous="true")
    assert "allocating 128 MiB" in previous and "still alive" not in previous
    assert has_event(server, pod.metadata.name, "OOMKilled")
    # Its next run yields the CPU (sandbox.demotion), and the pod says so.
    wait_for("a Demoted event", lambda: has_event(server, pod.metadata.name, "Demoted"))
    delete_and_wait(server, "hog")


def has_event(server: ShoalServer, pod_name: str, reason: str) -> bool:
    events = server.client.list(Event, "default").items
    return any(e.reason == reason and e.involved_object.name == pod_name for e in events)


def test_the_neighbour_of_an_oom_looping_pod_keeps_its_latency(
    server: ShoalServer, neighbour: int
) -> None:
    PacedLoad(neighbour, clients=2).run(2.0)  # warm up Envoy's connections and the app
    server.client.apply_all(
        [script_deployment("looper", OOM_LOOP, str(128 * MI), {"memory": "64Mi", "cpu": "100m"})]
    )
    wait_for("the first OOM kill of the loop", lambda: oom_kills(server) > 0, timeout=60)
    looper = only_pod(server, "looper")
    assert looper.status.pid is not None
    wait_for(
        "the looper's Demoted event", lambda: has_event(server, looper.metadata.name, "Demoted")
    )
    before = oom_kills(server)
    figures = measure_interference(neighbour, looper.status.pid, pairs=5, seconds=1.5)
    kills = oom_kills(server) - before
    delete_and_wait(server, "looper")
    print(f"\nneighbour of an OOM loop ({kills} OOM kills meanwhile): {figures.describe()}")
    assert figures.failures == 0
    assert kills > 1, "the looper was hardly OOM-killed: the test measured nothing"
    alone, crowded = median(figures.alone_ms), median(figures.crowded_ms)
    assert crowded < P99_FACTOR * alone + P99_SLACK_MS, figures.describe()


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def oom_kills(server: ShoalServer) -> int:
    """How many children of the looper the kernel has killed so far, as its log says."""
    text = app_log(server, "looper")
    return int(text.rsplit("oom kills", 1)[1].split()[0]) if "oom kills" in text else 0


def app_log(server: ShoalServer, app: str) -> str:
    pods = pods_of(server.client, app)
    return pod_log(server, pods[0].metadata.name) if pods else ""


def alive(process: psutil.Process) -> bool:
    """Running, not a zombie waiting for its reaper (the host's init reaps the sandbox's)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def is_script(process: psutil.Process | None) -> bool:
    """A Python process started with `-c` (the script itself, or a child it forked)."""
    return process is not None and process.cmdline()[1:2] == ["-c"]


def test_a_fork_bomb_is_stopped_by_the_pids_limit_and_only_its_pod_suffers(
    server: ShoalServer, neighbour: int
) -> None:
    server.client.apply_all(
        [script_deployment("bomb", FORK_BOMB, "-", {"memory": "256Mi", "cpu": "500m", "pids": 32})]
    )
    refused = wait_for(
        "the fork bomb to hit its limit",
        lambda: "fork refused" in (text := app_log(server, "bomb")) and text,
    )
    assert "Resource temporarily unavailable" in refused, refused
    children = int(refused.split("fork refused after", 1)[1].split()[0])
    assert 20 <= children < 32, refused

    pod = only_pod(server, "bomb")
    usage = httpx.get(
        f"{server.url}/api/v1/namespaces/default/pods/{pod.metadata.name}/usage", timeout=30
    ).json()
    assert usage["usage"]["pids"] == 32 and usage["limits"]["pids"] == 32
    top = CliRunner().invoke(shoal_cli, ["--server", server.url, "top", "pods"])
    assert top.exit_code == 0, top.output
    [row] = [line.split() for line in top.output.splitlines() if line.startswith("bomb-")]
    assert row[-1] == "32/32"

    # Only its pod suffers: the neighbour answers, and this machine can still start processes.
    for _ in range(20):
        assert httpx.get(f"http://127.0.0.1:{neighbour}/version", timeout=5).status_code == 200
    assert os.system("true") == 0
    assert only_pod(server, "neighbour").status.restart_count == 0

    # Deleting the pod leaves nothing behind, not even the daemon that left its process group.
    assert pod.status.pid is not None
    tree = [psutil.Process(pod.status.pid), *psutil.Process(pod.status.pid).children(True)]
    [bomb] = [p for p in tree if is_script(p) and not is_script(p.parent())]
    assert any(os.getpgid(p.pid) != os.getpgid(bomb.pid) for p in bomb.children()), "no daemon"
    delete_and_wait(server, "bomb")
    survivors = [process.pid for process in tree if alive(process)]
    assert survivors == [], f"processes of the deleted fork bomb still run: {survivors}"
