"""SwitchTrace: the time a traffic version first arrived, carried by the tables that route it,
and the log line the switch-latency bench parses."""

from __future__ import annotations

import re

from shoal.agent.switch_trace import LINE_PREFIX, SwitchTrace, line


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_version_keeps_the_time_it_first_arrived() -> None:
    clock = Clock()
    trace = SwitchTrace(clock)
    assert trace.saw({"ns/web": 3})
    clock.now = 101.0
    assert not trace.saw({"ns/web": 3})  # the same version again (another status write)
    assert trace.saw({"ns/api": 1})
    stamps = trace.stamps({"ns/web": 3, "ns/api": 1})
    assert stamps.seen == {"ns/web": 100.0, "ns/api": 101.0}
    assert stamps.computed == 101.0


def test_a_table_computed_before_a_version_arrived_does_not_carry_its_time() -> None:
    clock = Clock()
    trace = SwitchTrace(clock)
    trace.saw({"ns/web": 3})
    clock.now = 100.5
    trace.saw({"ns/web": 4})
    assert trace.stamps({"ns/web": 3}).seen == {}
    assert trace.stamps({"ns/web": 4}).seen == {"ns/web": 100.5}


def test_the_line_gives_each_stage_and_the_raw_stamps() -> None:
    clock = Clock()
    trace = SwitchTrace(clock)
    trace.saw({"ns/web": 7})
    clock.now = 100.010
    stamps = trace.stamps({"ns/web": 7})
    stamps.confirmed = 100.030
    text = line("node-1", "ns/web", 7, stamps, reported=100.045)
    assert text.startswith(f"{LINE_PREFIX} ns/web v7 on node-1:")
    assert "seen->table 10.0 ms, table->envoy 20.0 ms, envoy->reported 15.0 ms" in text
    raw = dict(re.findall(r"(\w+)=([\d.]+)", text))
    assert float(raw["seen"]) == 100.0 and float(raw["reported"]) == 100.045
