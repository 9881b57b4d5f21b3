"""How each event of a pod's life changes its status: pure functions over `PodStatus`.

Called by the pod worker (worker.py), which reads the pod, applies one of these to a copy of
its status and writes it back. Kept apart from the worker so that the status a user sees
(`shoal get pods`, `shoal describe pod`) is unit-tested directly.

Conditions, as Kubernetes has them:
    ContainersReady   the readiness probe passes (the data plane may route to the pod)
    Ready             ContainersReady AND Envoy confirmed it routes to the pod
A condition whose status and reason are unchanged is left as it is (no timestamp churn, so an
unchanged status is not written again).
"""

from __future__ import annotations

from datetime import UTC, datetime

from shoal.agent.drivers.base import ExitStatus, TaskHandle
from shoal.api.meta import Condition, find_condition, set_condition
from shoal.api.pod import ContainerStateTerminated, PodStatus

CRASH_LOOP = "CrashLoopBackOff"


def now() -> datetime:
    return datetime.now(UTC)


def condition(
    status: PodStatus,
    type_: str,
    value: bool,
    reason: str | None = None,
    message: str | None = None,
) -> None:
    wanted = "True" if value else "False"
    current = find_condition(status.conditions, type_)
    if current is not None and (current.status, current.reason, current.message) == (
        wanted, reason, message,
    ):  # fmt: skip
        return
    new = Condition(type=type_, status=wanted, reason=reason, message=message)
    status.conditions = set_condition(status.conditions, new, now())


def terminated(exit: ExitStatus) -> ContainerStateTerminated:
    return ContainerStateTerminated(
        exit_code=exit.exit_code,
        signal=exit.signal,
        reason=exit.reason,
        message=exit.message,
        started_at=datetime.fromtimestamp(exit.started_at, UTC),
        finished_at=datetime.fromtimestamp(exit.finished_at, UTC),
    )


def not_ready(status: PodStatus, reason: str | None, message: str | None = None) -> None:
    status.ready = False
    condition(status, "ContainersReady", False, reason, message)
    condition(status, "Ready", False, reason, message)


def running(
    status: PodStatus,
    *,
    handle: TaskHandle,
    ports: dict[str, int],
    primary: int | None,
    address: str,
    restart_count: int,
) -> None:
    """A process run has started (not ready until its readiness probe passes)."""
    status.phase = "Running"
    status.pid = handle.pid
    status.process_start_time = handle.create_time
    status.host_ports = dict(ports)
    status.host_port = primary
    status.host_ip = address
    status.start_time = status.start_time or now()
    status.restart_count = restart_count
    status.reason = status.message = None
    not_ready(status, "Starting")


def containers_ready(status: PodStatus) -> None:
    condition(status, "ContainersReady", True)


def ready(status: PodStatus) -> None:
    status.ready = True
    condition(status, "ContainersReady", True)
    condition(status, "Ready", True)


def exited(status: PodStatus, exit: ExitStatus) -> None:
    """A run ended (crash, exit, probe kill): no pid, not ready, lastState tells how."""
    status.pid = None
    status.last_state = terminated(exit)
    not_ready(status, exit.reason, exit.message)


def start_failed(status: PodStatus, failure: ExitStatus) -> None:
    """The process could not be started (ExecutableNotFound, PortsExhausted...)."""
    status.pid = None
    status.reason = failure.reason
    status.message = failure.message
    status.last_state = terminated(failure)
    not_ready(status, failure.reason, failure.message)


def waiting(status: PodStatus, reason: str, message: str) -> None:
    """Backing off before the next start; `reason` is CrashLoopBackOff after a run, or the
    start failure's own reason (e.g. ExecutableNotFound), so `shoal get pods` says why."""
    status.reason = reason
    status.message = message
    status.ready = False


def finished(status: PodStatus, phase: str, message: str) -> None:
    """No restart by policy: the pod's life is over."""
    status.phase = "Succeeded" if phase == "Succeeded" else "Failed"
    status.reason = None
    status.message = message
    status.ready = False


def stopped(status: PodStatus, exit: ExitStatus) -> None:
    """Stopped for good by the stop path (the pod is being deleted)."""
    status.phase = "Succeeded" if exit.succeeded else "Failed"
    status.pid = None
    status.last_state = terminated(exit)
    not_ready(status, "Terminated")
