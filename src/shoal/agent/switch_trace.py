"""Stage times of the traffic switches this node carries out, for its log and the switch-latency
bench.

A switch (promote, undo, abort, a new canary weight) reaches the agent as a Deployment whose
`status.rollout.traffic.version` grew. `SwitchTrace` notes when the agent saw each new version
(`saw`), and `TableStamps` when a routing table carrying it was computed and when Envoy
confirmed that table; the traffic reporter adds when `Node.status.traffic` said so and logs
`line(...)`, one INFO line per confirmed switch. `bench/bench_rollouts.py` reads the wall-clock
stamps of those lines to split a switch's latency into stages.

Used by `RolloutRouting` and `TrafficReporter` (rollout_routing.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

LINE_PREFIX = "traffic switch confirmed"


@dataclass(slots=True)
class TableStamps:
    """Wall-clock times (time.time()) in the life of one computed routing table."""

    seen: dict[str, float] = field(default_factory=dict)  # key -> when its version arrived
    computed: float = 0.0
    confirmed: float | None = None  # Envoy confirmed the whole table


class SwitchTrace:
    """When this agent first saw each traffic version (the latest per Deployment key)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._seen: dict[str, tuple[int, float]] = {}

    def saw(self, versions: dict[str, int]) -> bool:
        """Note the versions not seen before; True when there was one."""
        now = self.clock()
        new = False
        for key, version in versions.items():
            if version > self._seen.get(key, (0, 0.0))[0]:
                self._seen[key] = (version, now)
                new = True
        return new

    def stamps(self, versions: dict[str, int]) -> TableStamps:
        """Stamps of a table computed now with these versions (seen times of those carried)."""
        now = self.clock()
        seen = {
            key: at for key, (version, at) in self._seen.items() if versions.get(key, 0) >= version
        }
        return TableStamps(seen=seen, computed=now)


def line(node: str, key: str, version: int, stamps: TableStamps, reported: float) -> str:
    """The log line of one confirmed switch: readable durations, then the raw stamps."""
    seen = stamps.seen.get(key, stamps.computed)
    confirmed = stamps.confirmed if stamps.confirmed is not None else reported

    def ms(a: float, b: float) -> str:
        return f"{(b - a) * 1000:.1f}"

    return (
        f"{LINE_PREFIX} {key} v{version} on {node}: seen->table {ms(seen, stamps.computed)} ms,"
        f" table->envoy {ms(stamps.computed, confirmed)} ms,"
        f" envoy->reported {ms(confirmed, reported)} ms"
        f" [seen={seen:.6f} table={stamps.computed:.6f} envoy={confirmed:.6f}"
        f" reported={reported:.6f}]"
    )
