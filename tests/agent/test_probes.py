"""Probe state machine (pure thresholds) and PodProber timing/gating with a scripted check."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import pytest

from shoal.agent.exec_action import ExecContext
from shoal.agent.probe_checks import CheckResult, ProbeTarget
from shoal.agent.probes import PodProber, ProbeEvent, ProbeState, ProbeStatus
from shoal.api.pod import Probe

S, F = ProbeStatus.SUCCESS, ProbeStatus.FAILURE


def feed(state: ProbeState, results: Iterable[bool]) -> list[ProbeStatus | None]:
    return [state.observe(result) for result in results]


def test_readiness_starts_not_ready_and_needs_success_threshold() -> None:
    state = ProbeState("readiness", success_threshold=2, failure_threshold=3)
    assert state.status == F
    assert feed(state, [True, False, True, True, True]) == [None, None, None, S, None]


def test_readiness_failure_threshold_then_recovers() -> None:
    state = ProbeState("readiness", success_threshold=1, failure_threshold=3)
    assert feed(state, [True, False, False, True, False, False, False, True]) == [
        S, None, None, None, None, None, F, S,
    ]  # fmt: skip
    assert not state.on_hold, "readiness never stops probing"


def test_readiness_that_never_succeeds_reports_its_first_failure_verdict() -> None:
    state = ProbeState("readiness", success_threshold=1, failure_threshold=2)
    assert feed(state, [False, False, False, False]) == [None, F, None, None]


def test_liveness_starts_alive_fails_once_then_holds() -> None:
    state = ProbeState("liveness", success_threshold=1, failure_threshold=2)
    assert state.status == S
    assert feed(state, [True, False, True, False, False]) == [None, None, None, None, F]
    assert state.on_hold
    assert feed(state, [True, False, False]) == [None, None, None]


def test_startup_reports_success_or_failure_from_unknown() -> None:
    started = ProbeState("startup", success_threshold=1, failure_threshold=3)
    assert started.status == ProbeStatus.UNKNOWN
    assert feed(started, [False, False, True]) == [None, None, S]
    failed = ProbeState("startup", success_threshold=1, failure_threshold=2)
    assert feed(failed, [False, False, True]) == [None, F, None]
    assert failed.on_hold


def probe(**timing: float) -> Probe:
    values = {"period_seconds": 0.02, "timeout_seconds": 0.5, **timing}
    return Probe.model_validate({"exec": {"command": ["true"]}, **values})


class Script:
    """A check whose answers the test sets per probe (keyed by the Probe object)."""

    def __init__(self) -> None:
        self.answers: dict[int, bool] = {}
        self.calls: dict[int, int] = {}

    def set(self, which: Probe, answer: bool) -> None:
        self.answers[id(which)] = answer

    async def __call__(self, which: Probe) -> CheckResult:
        self.calls[id(which)] = self.calls.get(id(which), 0) + 1
        answer = self.answers.get(id(which), False)
        return CheckResult(answer, "ok" if answer else "nope")


class Recorder:
    def __init__(self) -> None:
        self.events: list[ProbeEvent] = []
        self.changed = asyncio.Event()

    async def __call__(self, event: ProbeEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def next(self) -> ProbeEvent:
        seen = len(self.events)
        async with asyncio.timeout(10):
            while len(self.events) == seen:
                self.changed.clear()
                await self.changed.wait()
        return self.events[seen]


@pytest.fixture
def target(tmp_path: Path) -> ProbeTarget:
    return ProbeTarget(ExecContext(cwd=tmp_path))


async def test_startup_gates_readiness_and_liveness(target: ProbeTarget) -> None:
    startup, readiness, liveness = (
        probe(failure_threshold=1000),
        probe(),
        probe(failure_threshold=2),
    )
    script, recorder = Script(), Recorder()
    script.set(readiness, True)
    script.set(liveness, True)
    prober = PodProber(
        startup=startup, readiness=readiness, liveness=liveness,
        target=target, on_event=recorder, check=script,
    )  # fmt: skip
    prober.start()
    try:
        await asyncio.sleep(0.1)
        assert recorder.events == []
        assert script.calls.get(id(readiness)) is None, "nothing but startup before it succeeds"
        script.set(startup, True)
        assert await recorder.next() == ProbeEvent("startup", True, "ok")
        assert await recorder.next() == ProbeEvent("readiness", True, "ok")
        assert prober.started and prober.ready
        calls = script.calls[id(startup)]
        script.set(readiness, False)
        assert await recorder.next() == ProbeEvent("readiness", False, "nope")
        script.set(liveness, False)
        assert await recorder.next() == ProbeEvent("liveness", False, "nope")
        assert script.calls[id(startup)] == calls, "startup is not probed once it succeeded"
    finally:
        await prober.stop()


async def test_no_readiness_probe_means_ready_once_started(target: ProbeTarget) -> None:
    recorder = Recorder()
    prober = PodProber(
        startup=None, readiness=None, liveness=None, target=target, on_event=recorder
    )
    prober.start()
    try:
        assert await recorder.next() == ProbeEvent("readiness", True, "no readiness probe")
    finally:
        await prober.stop()


async def test_startup_failure_is_reported_once(target: ProbeTarget) -> None:
    startup = probe(failure_threshold=3)
    script, recorder = Script(), Recorder()
    prober = PodProber(
        startup=startup, readiness=None, liveness=None, target=target,
        on_event=recorder, check=script,
    )  # fmt: skip
    prober.start()
    try:
        assert await recorder.next() == ProbeEvent("startup", False, "nope")
        await asyncio.sleep(0.1)
        assert script.calls[id(startup)] == 3
        assert len(recorder.events) == 1 and not prober.ready
    finally:
        await prober.stop()


async def test_initial_delay_counts_from_process_start(target: ProbeTarget) -> None:
    readiness = probe(initial_delay_seconds=60)
    script, recorder = Script(), Recorder()
    script.set(readiness, True)
    loop = asyncio.get_running_loop()
    prober = PodProber(
        startup=None, readiness=readiness, liveness=None, target=target,
        on_event=recorder, check=script, started_at=loop.time() - 59.9,
    )  # fmt: skip
    prober.start()
    try:
        assert await recorder.next() == ProbeEvent("readiness", True, "ok")
        later = probe(initial_delay_seconds=60)
        script.set(later, True)
        delayed = PodProber(
            startup=None, readiness=later, liveness=None, target=target,
            on_event=recorder, check=script,
        )  # fmt: skip
        delayed.start()
        await asyncio.sleep(0.1)
        await delayed.stop()
        assert id(later) not in script.calls, "the second prober is still in its delay"
    finally:
        await prober.stop()


async def test_a_hanging_check_counts_as_failure(target: ProbeTarget) -> None:
    liveness = probe(timeout_seconds=0.01, failure_threshold=1)
    recorder = Recorder()

    async def hang(_: Probe) -> CheckResult:
        await asyncio.sleep(100)
        raise AssertionError("unreachable")

    prober = PodProber(
        startup=None, readiness=None, liveness=liveness, target=target,
        on_event=recorder, check=hang,
    )  # fmt: skip
    prober.start()
    try:
        events = [await recorder.next(), await recorder.next()]
        assert ProbeEvent("liveness", False, "timeout after 0.01s") in events
    finally:
        await prober.stop()


async def test_a_broken_check_or_handler_does_not_stop_probing(target: ProbeTarget) -> None:
    readiness = probe(failure_threshold=1)
    recorder = Recorder()
    attempts = 0

    async def flaky(_: Probe) -> CheckResult:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("bug in a check")
        return CheckResult(True, "ok")

    async def handler(event: ProbeEvent) -> None:
        await recorder(event)
        raise RuntimeError("bug in the runner")

    prober = PodProber(
        startup=None, readiness=readiness, liveness=None, target=target,
        on_event=handler, check=flaky,
    )  # fmt: skip
    prober.start()
    try:
        failed = ProbeEvent("readiness", False, "probe error: RuntimeError: bug in a check")
        assert await recorder.next() == failed
        assert await recorder.next() == ProbeEvent("readiness", True, "ok")
        assert prober.ready and attempts >= 2
    finally:
        await prober.stop()
