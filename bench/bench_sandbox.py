"""Sandbox benchmark (prints figures; not a test): what bubblewrap + a cgroup cost a pod.

Driver level (the agent runner's apply -> ready path adds the same constant to both):
  1. start latency: driver.start() -> the pod's HTTP port answers, p50 over N pods (default 20),
     sandbox vs none (goal: sandbox adds < 50 ms);
  2. overhead: requests/s of the pod's tiny HTTP app (stdlib, HTTP/1.1 keep-alive), sandbox vs
     none, the pods side by side and pinned alike, loaded in interleaved A B B A rounds by one
     pinned load generator (wrk, else bench/loadgen), with a none-vs-none control; also requests
     per CPU-second of the app (bench/sandbox_throughput.py has the method) (goal >= 0.95x).
Through the whole system (a real `shoal server`: API, scheduler, embedded agent, Envoy; the e2e
harness in tests/e2e starts it and stops it by pid):
  3. apply -> ready: a bare Pod of the probe app applied through the API until its status says
     ready (bound by the scheduler, started by the agent, readiness probe every 10 ms), p50 over
     N pods per isolation, alternating, in one run (goal: sandbox adds < 50 ms);
  4. a neighbour's p99 under an open-loop fixed-rate load through its Service beside an OOM loop,
     a CPU-only control with the same CPU limit (both frozen and thawed in A B B A windows), and
     a pod OOM-killed and restarted by policy (bench/sandbox_neighbour.py has the method)
     (goal < 1.2x); `--parts crashloop` measures only the last, the issue's own scenario.
Needs root, bubblewrap and cgroups. Every pod is stopped by the driver before the next starts.
Run: `.venv/bin/python bench/bench_sandbox.py [--pods 20] [--seconds 1] [--rounds 10]
[--app-cpus 0] [--load-cpus 1] [--pairs 6] [--crash-blocks 3]
[--parts driver,system,neighbour|crashloop]
[--driver-parts start,throughput]`.
Other load on the machine shows in both columns; the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sandbox_neighbour import neighbour_figures
from sandbox_throughput import throughput

from shoal.agent.drivers.base import Driver, ProcessSpec, TaskHandle
from shoal.agent.drivers.process import ProcessDriver
from shoal.agent.drivers.sandbox import SandboxDriver
from shoal.agent.sandbox.availability import sandbox_available

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
PY = shutil.which("python3", path=SYSTEM_PATH) or "python3"
APP = textwrap.dedent(
    """
    import os
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else delayed ACKs cap keep-alive at ~25 req/s/conn
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "2")
            self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pod(root: Path, name: str, port: int) -> ProcessSpec:
    workdir = root / name
    workdir.mkdir()
    workdir.chmod(0o777)
    return ProcessSpec(
        argv=[PY, "-c", APP],
        cwd=workdir,
        log_path=root / "logs" / f"{name}.log",
        pod_uid=f"bench-{name}",
        pod_name=name,
        owner="bench",
        env={"PATH": SYSTEM_PATH},
        ports={"": port},
        primary_port=port,
    )


async def start_ready(driver: Driver, spec: ProcessSpec) -> tuple[TaskHandle, float]:
    assert spec.primary_port is not None
    began = time.perf_counter()
    handle = await driver.start(spec)
    assert isinstance(handle, TaskHandle), handle
    deadline = began + 20
    while not answers(spec.primary_port):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{spec.pod_name} never answered: {spec.log_path.read_text()}")
        await asyncio.sleep(0.001)
    return handle, time.perf_counter() - began


async def start_latency(
    drivers: dict[str, Driver], root: Path, pods: int
) -> dict[str, list[float]]:
    """Alternates the drivers pod by pod, so that load from elsewhere hits both alike."""
    seconds: dict[str, list[float]] = {label: [] for label in drivers}
    for index in range(pods):
        for label, driver in drivers.items():
            handle, took = await start_ready(driver, pod(root, f"{label}-{index}", free_port()))
            seconds[label].append(took)
            await driver.stop(handle, 5)
    return seconds


FIRST_LINE = "import time; print(time.time(), flush=True)"


async def start_breakdown(
    sandbox: SandboxDriver, plain: ProcessDriver, root: Path, pods: int
) -> dict[str, float]:
    """Where a sandboxed start spends its time, p50 over `pods` starts (ms): the driver's own
    steps (as it logs them), then start() -> the pod's command running (`date` prints the
    wall clock on exec) and -> its first Python line, each beside the same for `none`."""
    steps: dict[str, list[float]] = {}
    clocks: dict[str, list[float]] = {}
    commands = {"exec": ["/bin/date", "+%s.%N"], "python": [PY, "-c", FIRST_LINE]}
    for index in range(pods):
        for label, driver in (("none", plain), ("sandbox", sandbox)):
            for what, argv in commands.items():
                spec = replace(pod(root, f"{label}-{what}-{index}", free_port()), argv=argv)
                began = time.time()
                handle = await driver.start(spec)
                assert isinstance(handle, TaskHandle), handle
                if label == "sandbox":
                    for step, took in sandbox.last_start_steps.items():
                        steps.setdefault(step, []).append(took)
                await driver.wait(handle)
                await driver.stop(handle, 5)
                printed = float(spec.log_path.read_text().split()[0])
                clocks.setdefault(f"{label} {what}", []).append(1000 * (printed - began))
    figures = {step: statistics.median(values) for step, values in steps.items()}
    figures.update({name: statistics.median(values) for name, values in clocks.items()})
    return figures


def ms(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


# -- through the whole system ----------------------------------------------------------------
def ready_pod(name: str, app: Path, isolation: str) -> dict[str, Any]:
    """A bare Pod of the probe app; ready once its readiness probe (every 10 ms) passes."""
    return {
        "apiVersion": "shoal/v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "isolation": isolation,
            "command": [PY, str(app)],
            "ports": [{"name": "http"}],
            "readinessProbe": {
                "httpGet": {"path": "/healthz", "port": "http"},
                "periodSeconds": 0.01,
            },
            # No CPU limit: a quota would throttle the interpreter's start (tens of ms of CPU),
            # which is the limit's cost, not the sandbox's.
            "resources": {"limits": {"memory": "128Mi", "pids": 64}},
            "terminationGracePeriodSeconds": 1,
        },
    }


def apply_to_ready(client: Any, doc: dict[str, Any]) -> float:
    """Seconds from the apply call to the API saying ready; then the pod is deleted (and gone)."""
    from shoal.api.pod import Pod  # noqa: PLC0415

    name = doc["metadata"]["name"]
    began = time.perf_counter()
    client.apply(doc)
    took = None
    while time.perf_counter() - began < 30:
        if client.get(Pod, name).status.ready:
            took = time.perf_counter() - began
            break
        time.sleep(0.005)
    client.delete(Pod, name)
    for _ in range(3000):
        if not any(p.metadata.name == name for p in client.list(Pod, "default").items):
            break
        time.sleep(0.01)
    if took is None:
        raise RuntimeError(f"pod {name} was not ready within 30 s")
    return took


def system_figures(options: argparse.Namespace, parts: set[str]) -> None:
    """apply -> ready and neighbour interference through a real `shoal server`."""
    # The e2e harness (servers, manifests, paced load) lives beside the tests.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
    import agent_harness as cluster  # noqa: PLC0415
    import sandbox_harness as boxes  # noqa: PLC0415

    with boxes.searchable_dir("shoal-bench-") as base, boxes.servers_under(base) as start:
        server, app = start(), boxes.install_app(base)
        print(f"shoal server with its agent and Envoy; load average {os.getloadavg()[0]:.2f}")
        if "system" in parts:
            took: dict[str, list[float]] = {"none": [], "sandbox": []}
            for index in range(options.pods):
                for isolation, values in took.items():
                    doc = ready_pod(f"{isolation}-{index}", app, isolation)
                    values.append(apply_to_ready(server.client, doc))
            none, sandbox = statistics.median(took["none"]), statistics.median(took["sandbox"])
            print(
                f"apply -> ready (API, scheduler, agent, probe every 10 ms), {options.pods} pods "
                "each: "
                f"none p50 {1000 * none:.1f} ms | sandbox p50 {1000 * sandbox:.1f} ms | "
                f"sandbox adds {1000 * (sandbox - none):.1f} ms, ratio {sandbox / none:.2f}x "
                "(goal: adds < 50 ms)"
            )
        if parts & {"neighbour", "crashloop"}:
            neighbour_figures(
                server,
                app,
                cluster,
                boxes,
                blocks=options.pairs,
                crash_blocks=options.crash_blocks,
                noisy_pods="neighbour" in parts,
            )


async def driver_figures(options: argparse.Namespace, why: str) -> None:
    root = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="shoal-bench-sandbox-"))
    os.chmod(root, 0o755)  # the pods' uid must be able to enter it
    sandbox = SandboxDriver(f"bench-{os.getpid()}", cgroup_parent="shoal-bench")
    plain = ProcessDriver()
    try:
        print(f"sandbox: {why}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        drivers: dict[str, Driver] = {"none": plain, "sandbox": sandbox}
        if "start" in options.driver_parts:
            starts = await start_latency(drivers, root, options.pods)
            none_start, sandbox_start = starts["none"], starts["sandbox"]
            added = statistics.median(sandbox_start) - statistics.median(none_start)
            print(
                f"driver start -> port answering, {options.pods} pods: "
                f"none p50 {ms(none_start, 0.5):.1f} ms p90 {ms(none_start, 0.9):.1f} ms | "
                f"sandbox p50 {ms(sandbox_start, 0.5):.1f} ms "
                f"p90 {ms(sandbox_start, 0.9):.1f} ms | "
                f"sandbox adds {1000 * added:.1f} ms (goal < 50 ms)"
            )
            parts = await start_breakdown(sandbox, plain, root, options.pods)
            print(
                "  where the sandbox's start goes (p50, ms): in the driver "
                + ", ".join(f"{step} {parts[step]:.2f}" for step in sandbox.last_start_steps)
                + f"; start() -> command running: none {parts['none exec']:.1f}, sandbox "
                f"{parts['sandbox exec']:.1f} (placement in the cgroups, setpriv, bwrap); "
                f"-> first Python line: none {parts['none python']:.1f}, sandbox "
                f"{parts['sandbox python']:.1f}"
            )
        if "throughput" in options.driver_parts:
            tool = "wrk -t1" if shutil.which("wrk") else "bench/loadgen"

            async def start(driver: Driver, name: str) -> tuple[TaskHandle, int]:
                spec = pod(root, name, free_port())
                assert spec.primary_port is not None
                handle, _ = await start_ready(driver, spec)
                return handle, spec.primary_port

            (rate, cost), (control_rate, control_cost) = await throughput(drivers, start, options)
            print(
                f"throughput ({tool} -c{options.connections}, {options.seconds} s rounds, "
                f"app on CPUs {options.app_cpus or 'any'}, load on CPUs "
                f"{options.load_cpus or 'any'}; load average {os.getloadavg()[0]:.2f}):\n"
                f"  requests/s: {rate.describe()} (goal >= 0.95x)\n"
                f"    control, two plain pods: {control_rate.describe()}\n"
                f"  requests per CPU-second of the app: {cost.describe()}\n"
                f"    control, two plain pods: {control_cost.describe()}"
            )
    finally:
        for handle in sandbox.managed():
            await sandbox.stop(handle, 0)
        for handle in plain.managed():
            await plain.stop(handle, 0)
        sandbox.remove_node_cgroups()
        shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=1, help="one throughput round")
    parser.add_argument("--rounds", type=int, default=10, help="ABBA throughput blocks")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--app-cpus", default="0", help="CPUs the apps run on ('': any)")
    parser.add_argument("--load-cpus", default="1", help="CPUs wrk runs on ('': any)")
    parser.add_argument("--driver-parts", default="start,throughput")
    parser.add_argument("--pairs", type=int, default=6, help="neighbour ABBA blocks per noisy pod")
    parser.add_argument("--crash-blocks", type=int, default=3, help="crash-loop blocks")
    parser.add_argument("--parts", default="driver,system,neighbour")
    options = parser.parse_args()
    parts = set(options.parts.split(","))
    available, why = sandbox_available()
    if not available:
        raise SystemExit(f"sandbox unavailable: {why}")
    if "driver" in parts:
        asyncio.run(driver_figures(options, why))
    if parts & {"system", "neighbour", "crashloop"}:
        system_figures(options, parts)


if __name__ == "__main__":
    main()
