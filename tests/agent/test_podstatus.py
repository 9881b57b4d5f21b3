"""podstatus: the status a user sees for each event of a pod's life (pure transitions)."""

from __future__ import annotations

import signal

from shoal.agent import podstatus
from shoal.agent.drivers.base import ExitStatus, TaskHandle
from shoal.api.meta import find_condition
from shoal.api.pod import PodStatus

HANDLE = TaskHandle("process", "uid-1", 4242, 4242, 1700000000.5, 1700000000.5)


def condition(status: PodStatus, type_: str) -> tuple[str, str | None, str | None]:
    found = find_condition(status.conditions, type_)
    assert found is not None
    return found.status, found.reason, found.message


def started() -> PodStatus:
    status = PodStatus()
    podstatus.running(
        status, handle=HANDLE, ports={"http": 20001}, primary=20001, address="10.0.0.1",
        restart_count=2,
    )  # fmt: skip
    return status


def test_running_records_the_process_but_is_not_ready_yet() -> None:
    status = started()
    assert (status.phase, status.pid, status.process_start_time) == (
        "Running",
        4242,
        HANDLE.create_time,
    )
    assert (status.host_port, status.host_ports, status.host_ip) == (
        20001,
        {"http": 20001},
        "10.0.0.1",
    )
    assert status.restart_count == 2 and status.start_time is not None
    assert not status.ready
    assert condition(status, "Ready") == ("False", "Starting", None)


def test_ready_needs_both_conditions_and_readiness_failure_keeps_the_message() -> None:
    status = started()
    podstatus.containers_ready(status)
    assert condition(status, "ContainersReady")[0] == "True" and not status.ready
    podstatus.ready(status)
    assert status.ready and condition(status, "Ready")[0] == "True"
    podstatus.not_ready(status, "ReadinessProbeFailed", "HTTP 503")
    assert not status.ready
    assert condition(status, "ContainersReady") == ("False", "ReadinessProbeFailed", "HTTP 503")


def test_an_unchanged_condition_is_left_alone() -> None:
    status = started()
    podstatus.ready(status)
    before = status.model_copy(deep=True)
    podstatus.ready(status)
    assert status == before, "no timestamp churn, so nothing is written again"


def test_an_exit_is_kept_in_last_state_then_back_off_shows_the_reason() -> None:
    status = started()
    killed = ExitStatus(None, signal.SIGKILL, "Error", 1.0, 2.0, "killed by signal SIGKILL")
    podstatus.exited(status, killed)
    assert status.pid is None and status.last_state is not None
    assert (status.last_state.signal, status.last_state.exit_code) == (signal.SIGKILL, None)
    assert condition(status, "Ready") == ("False", "Error", "killed by signal SIGKILL")
    podstatus.waiting(status, podstatus.CRASH_LOOP, "back-off 0.5s restarting pod")
    assert (status.reason, status.phase) == ("CrashLoopBackOff", "Running")


def test_a_start_failure_is_the_status_reason() -> None:
    status = PodStatus()
    failure = ExitStatus(None, None, "ExecutableNotFound", 1.0, 1.0, "nope: not found in PATH")
    podstatus.start_failed(status, failure)
    assert (status.reason, status.message) == ("ExecutableNotFound", "nope: not found in PATH")
    assert status.last_state is not None and status.last_state.reason == "ExecutableNotFound"
    podstatus.running(
        status, handle=HANDLE, ports={}, primary=None, address="127.0.0.1", restart_count=1
    )
    assert status.reason is None and status.message is None


def test_finished_and_stopped_set_terminal_phases() -> None:
    status = started()
    podstatus.finished(status, "Succeeded", "not restarted (restartPolicy OnFailure)")
    assert (status.phase, status.ready) == ("Succeeded", False)
    status = started()
    podstatus.stopped(status, ExitStatus(None, signal.SIGKILL, "Error", 1.0, 2.0))
    assert status.phase == "Failed" and status.pid is None
    assert condition(status, "Ready")[1] == "Terminated"
