"""Crash loops: N pods that all exit at once (chaos scenario 8's part d, alone). Prints the API
latency a prober sees (GET of one Deployment every 50 ms: p50/p99/max) and the CPU of the
`shoal server` process, per phase: the ramp (apply -> every pod restarted at least once), a
steady window of crash-looping (its CPU also per restart: the control plane's cost of one
restart, the agent's and the controllers' writes and all they set off, the prober included),
and the delete (-> every pod gone).

    .venv/bin/python bench/bench_crashloop.py [--pods 500] [--steady 60] [--profile out.txt]

Starts a real `shoal server` (API, controllers, embedded agent) on a free port with a temp data
dir, applies 20 Deployments of 0 replicas (the prober reads one) and one Deployment of --pods
replicas whose command is `exit 3`. --profile runs `py-spy record --format raw` on the server
from the apply to the end of the steady window (collapsed stacks, one per line). The server is
stopped by its pid at the end and leftovers are reported (and killed by pid).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import percentile
from chaos.exhaustion import Prober
from chaos.harness import Cluster, Context, deployment, list_items, wait_for


def crasher(pods: int) -> dict[str, object]:
    doc = deployment("crasher", pods)
    template = doc["spec"]["template"]["spec"]
    template.pop("readinessProbe")
    template.update(command=["/bin/sh", "-c", "exit 3"], ports=[])
    template["resources"] = {"requests": {"cpu": "1m", "memory": "1Mi"}}
    return doc


class Phase:
    """Latencies and server CPU seconds between `start()` and `end()`."""

    def __init__(self, name: str, prober: Prober, server: psutil.Process) -> None:
        self.name, self.prober, self.server = name, prober, server

    def start(self) -> None:
        self.first = len(self.prober.latencies)
        times = self.server.cpu_times()
        self.cpu = times.user + times.system
        self.began = time.monotonic()

    def end(self, restarts: int | None = None) -> str:
        seconds = time.monotonic() - self.began
        times = self.server.cpu_times()
        cpu = times.user + times.system - self.cpu
        got = self.prober.latencies[self.first :]
        each = f", {cpu / restarts * 1000:.0f} ms per restart ({restarts})" if restarts else ""
        return (
            f"{self.name:7s} {seconds:5.0f}s  reads {len(got):5d}  p50 "
            f"{percentile(got, 0.5) * 1000:5.0f} ms  p99 {percentile(got, 0.99) * 1000:5.0f} ms  "
            f"max {max(got, default=0) * 1000:5.0f} ms  server CPU {cpu / seconds * 100:3.0f} %"
            f"{each}"
        )


async def main(args: argparse.Namespace) -> None:
    ctx = Context("crashloop", short=False, sabotage=False, root=Path(tempfile.gettempdir()))
    cluster = Cluster(ctx)
    try:
        await cluster.start()
        assert cluster.server is not None
        server = psutil.Process(cluster.server.pid)
        await cluster.apply(*[deployment(f"keep-{i}", 0) for i in range(20)])
        prober = Prober(cluster.url, "/api/v1/namespaces/default/deployments/keep-0")
        prober.start()
        await asyncio.sleep(1)
        lines = []
        whole = Phase("all", prober, server)
        whole.start()
        ramp = Phase("ramp", prober, server)
        ramp.start()
        spy = None
        if args.profile:
            spy = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited on)
                [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                 "--rate", "50", "-o", args.profile, "-p", str(server.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        await cluster.apply(crasher(args.pods))

        checks = [0]

        async def looping() -> bool:
            pods = await list_items(cluster.client, "pods", "app=crasher")
            statuses = [p.get("status") or {} for p in pods]
            restarted = sum(1 for s in statuses if s.get("restartCount", 0))
            checks[0] += 1
            if checks[0] % 15 == 0:
                print(
                    f"  {time.monotonic() - ramp.began:4.0f}s: {len(pods)} pods, "
                    f"{sum(1 for s in statuses if s.get('phase') == 'Running')} Running, "
                    f"{sum(1 for s in statuses if s.get('lastState'))} exited, "
                    f"{restarted} restarted",
                    flush=True,
                )
            return bool(restarted == args.pods)

        async def restarts() -> int:
            pods = await list_items(cluster.client, "pods", "app=crasher")
            return sum((p.get("status") or {}).get("restartCount", 0) for p in pods)

        took = await wait_for(looping, 180, interval=1.0)
        lines.append(ramp.end() + ("" if took is not None else "  (not all looped in 180 s)"))
        steady = Phase("steady", prober, server)
        before = await restarts()
        steady.start()
        await asyncio.sleep(args.steady)
        lines.append(steady.end(restarts=await restarts() - before))
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            await asyncio.to_thread(spy.wait, 30)
        counted = await restarts()
        events = await list_items(cluster.client, "events")
        delete = Phase("delete", prober, server)
        delete.start()
        await cluster.client.request_json(
            "DELETE", "/api/v1/namespaces/default/deployments/crasher"
        )

        async def gone() -> bool:
            return not await list_items(cluster.client, "pods", "app=crasher")

        removed = await wait_for(gone, 180, interval=1.0)
        lines.append(delete.end() + ("" if removed is not None else "  (pods left after 180 s)"))
        lines.append(whole.end())
        await prober.stop()
        print(f"{args.pods} crash-looping pods; load average {psutil.getloadavg()[0]:.1f}")
        print(f"restarts counted {counted}; Event objects {len(events)}")
        print(f"probe failures: {len(prober.failures)} {prober.failures[:3]}")
        for line in lines:
            print(line)
    finally:
        await cluster.close()
        left = ctx.stop_all()
        if left:
            print(f"leftovers killed: {left}")
        ctx.remove_dir()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--steady", type=float, default=60.0)
    parser.add_argument("--profile", default="")
    asyncio.run(main(parser.parse_args()))
