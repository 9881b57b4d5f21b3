"""Restart policy and backoff: which exits restart, how the delay grows, caps and resets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.agent.drivers.base import ExitStatus
from shoal.agent.restarts import (
    RESTART_SETTLE_SECONDS,
    Backoff,
    RestartHistory,
    RestartPolicy,
    next_restart,
    settle_seconds,
)


def exit_after(seconds: float, code: int | None = 1, signal: int | None = None) -> ExitStatus:
    return ExitStatus(code, signal, "Error", started_at=100.0, finished_at=100.0 + seconds)


def test_policies() -> None:
    ok, failed, killed = exit_after(1, 0), exit_after(1, 2), exit_after(1, None, 9)
    cases: list[tuple[RestartPolicy, ExitStatus, bool]] = [
        ("Always", ok, True),
        ("Always", failed, True),
        ("OnFailure", ok, False),
        ("OnFailure", failed, True),
        ("OnFailure", killed, True),
        ("Never", failed, False),
        ("Never", ok, False),
    ]
    for policy, exit, restart in cases:
        assert next_restart(policy, exit, RestartHistory(), now=200).restart is restart, policy


def test_terminal_phases() -> None:
    done = next_restart("Never", exit_after(1, 0), RestartHistory(), now=200)
    assert (done.phase, done.reason) == ("Succeeded", "Completed")
    failed = next_restart("OnFailure", exit_after(1, None, None), RestartHistory(), now=200)
    assert failed.restart and failed.phase == "Running", "unknown exit counts as a failure"
    never = next_restart("Never", exit_after(1, 3), RestartHistory(), now=200)
    assert (never.phase, never.history) == ("Failed", RestartHistory())


def test_first_restart_within_a_second_then_doubling_then_capped() -> None:
    history = RestartHistory()
    delays = []
    for _ in range(10):
        exit = exit_after(0.1)
        decision = next_restart("Always", exit, history, now=exit.finished_at)
        delays.append(decision.delay_seconds)
        history = decision.history
    assert delays[0] <= 1.0
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == 30.0 and delays[-1] == 30.0
    assert history.restart_count == 10


def test_stable_run_resets_the_backoff() -> None:
    history = RestartHistory(restart_count=7, exponent=7)
    crashed = next_restart("Always", exit_after(1), history, now=101)
    assert crashed.delay_seconds == 30.0
    stable = next_restart("Always", exit_after(10), history, now=110)
    assert stable.delay_seconds == 0.5
    assert stable.history == RestartHistory(restart_count=8, exponent=1)


def test_delay_counts_from_the_exit_not_from_now() -> None:
    decision = next_restart("Always", exit_after(1), RestartHistory(exponent=2), now=102.5)
    assert decision.restart_at == 103.0
    assert decision.delay_seconds == 0.5
    late = next_restart("Always", exit_after(1), RestartHistory(exponent=2), now=500)
    assert (late.restart_at, late.delay_seconds) == (500, 0)


@given(
    exponent=st.integers(min_value=0, max_value=10_000),
    ran=st.floats(min_value=0, max_value=1e6),
    now_after=st.floats(min_value=0, max_value=1e6),
)
def test_delay_is_bounded(exponent: int, ran: float, now_after: float) -> None:
    backoff = Backoff()
    exit = exit_after(ran)
    decision = next_restart(
        "Always", exit, RestartHistory(exponent=exponent), exit.finished_at + now_after
    )
    assert 0 <= decision.delay_seconds <= backoff.max_seconds
    assert decision.restart_at >= exit.finished_at + backoff.initial_seconds


def test_only_a_run_after_a_short_one_settles_before_it_may_be_ready() -> None:
    stable = Backoff().stable_after_seconds
    assert settle_seconds(None) == 0.0  # a pod's first run: a rollout waits on it
    assert settle_seconds(stable) == settle_seconds(600.0) == 0.0  # after a kill of a stable run
    assert settle_seconds(0.1) == settle_seconds(stable - 0.01) == RESTART_SETTLE_SECONDS > 0
