"""Where a traffic switch's time goes, for bench_rollouts.py: watch streams timestamp what the
controller and the agent write, and the agent's "traffic switch confirmed" log lines
(shoal.agent.switch_trace) give its own stage times. All stamps are wall-clock (time.time()),
the bench and the server run on the same machine.

Stages of one switch (request = the bench starts writing the promote/undo/abort):

    controller   request -> the Deployment's status carries the new traffic version
    watch        that status -> the agent saw it (its Deployment informer)
    queue        agent saw it -> a routing table carrying it was computed
    envoy        table -> Envoy confirmed it (xDS files written, admin API polled)
    report       Envoy confirmed -> Node.status.traffic written
    confirm      Node.status.traffic -> the rollout status says every node confirmed
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.api.deployment import Deployment
from shoal.api.node import Node
from shoal.client import Client

STAGES = ("controller", "watch", "queue", "envoy", "report", "confirm")
_LINE = re.compile(
    r"traffic switch confirmed (\S+) v(\d+) on \S+: .*\[seen=([\d.]+) table=([\d.]+) "
    r"envoy=([\d.]+) reported=([\d.]+)\]"
)


class Recorder:
    """Every event of one watch, stamped on arrival, in a background thread."""

    def __init__(self, url: str, cls: type[Deployment] | type[Node], namespace: str | None):
        self.events: list[tuple[float, Any]] = []
        self.lock = threading.Lock()
        self.client = Client(url)
        self.cls, self.namespace = cls, namespace
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        since = 0
        while not self.stopped:
            try:
                for event in self.client.watch(self.cls, self.namespace, since=since):
                    with self.lock:
                        self.events.append((time.time(), event.object))
                    since = max(since, event.revision)
            except Exception:  # the server stopping, a read timeout: start again if wanted
                time.sleep(0.1)

    def first(self, after: float, match: Callable[[Any], bool], timeout: float = 30) -> float:
        """The arrival time of the first event after `after` that matches."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [t for t, obj in self.events if t >= after and match(obj)]
            if found:
                return found[0]
            time.sleep(0.005)
        raise AssertionError("the watched event never came")

    def close(self) -> None:
        self.stopped = True
        self.client.close()


@dataclass
class Switch:
    """The stamps of one switch; `stages()` are its durations in seconds."""

    request: float
    status: float  # the Deployment status carried the new version
    seen: float
    table: float
    envoy: float
    reported: float
    confirmed: float  # the rollout status said every node confirmed it

    def stages(self) -> dict[str, float]:
        points = [self.request, self.status, self.seen, self.table, self.envoy, self.reported,
                  self.confirmed]  # fmt: skip
        return {name: b - a for name, a, b in zip(STAGES, points, points[1:], strict=False)}

    @property
    def total(self) -> float:
        return self.confirmed - self.request


def agent_lines(log: str, key: str) -> list[tuple[int, float, float, float, float]]:
    """(version, seen, table, envoy, reported) of the agent's confirmed switches of `key`."""
    return [
        (int(m[2]), float(m[3]), float(m[4]), float(m[5]), float(m[6]))
        for m in _LINE.finditer(log)
        if m[1] == key
    ]


def rollout(obj: Any) -> tuple[int, int]:
    status = obj.status.rollout
    return (0, 0) if status is None else (status.traffic.version, status.confirmed_version)


class Tracer:
    """Stamps of the switches of one Deployment (`namespace/name`)."""

    def __init__(self, url: str, namespace: str, name: str, log: Callable[[], str]) -> None:
        self.key, self.name = f"{namespace}/{name}", name
        self.log = log
        self.deployments = Recorder(url, Deployment, namespace)

    def switch(self, request: float, before: int) -> Switch:
        """The switch to the first traffic version above `before`, requested at `request`."""

        def named(obj: Any) -> bool:
            return bool(obj.metadata.name == self.name)

        def switched(obj: Any) -> bool:
            return named(obj) and rollout(obj)[0] > before

        status = self.deployments.first(request, switched)
        confirmed = self.deployments.first(
            request, lambda o: switched(o) and rollout(o)[1] >= rollout(o)[0]
        )
        deadline = time.monotonic() + 10
        while True:  # the agent logs just after its Node write returns: a moment later
            lines = [line for line in agent_lines(self.log(), self.key) if line[0] > before]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not lines:
            raise AssertionError(f"no agent log line for {self.key} above v{before}")
        _, seen, table, envoy, reported = lines[0]
        return Switch(request, status, seen, table, envoy, reported, confirmed)

    def close(self) -> None:
        self.deployments.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def breakdown(switches: list[Switch]) -> list[str]:
    """One line per stage: p50 / p99 / max in ms."""
    out = []
    for stage in STAGES:
        ms = [s.stages()[stage] * 1000 for s in switches]
        out.append(f"      {stage:<11} p50 {percentile(ms, 0.5):6.1f} ms  "
                   f"p99 {percentile(ms, 0.99):6.1f} ms  max {max(ms):6.1f} ms")  # fmt: skip
    return out
