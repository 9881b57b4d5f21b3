"""The Driver protocol and the plain data it speaks (Nomad's task driver, shoal-sized).

The agent runner translates a Pod into a `ProcessSpec` (no API models here, so drivers are easy
to test) and calls a driver:

    start(spec)       -> TaskHandle | StartError   never raises for a bad command
    wait(handle)      -> ExitStatus                 when the process group leader exits
    signal(handle, s)                               to the whole process group
    stop(handle, grace) -> ExitStatus               SIGTERM group, wait grace, SIGKILL group
    recover(handle)   -> TaskHandle | ExitStatus    re-adopt after an agent restart
    inspect(handle)   -> TaskInfo                   liveness and resource usage

A `TaskHandle` is plain, JSON-serialisable data: the agent persists `handle.to_json()` (and the
pid plus process start time go into the Pod status) so that a restarted agent can hand it back to
`recover`. A driver keeps its own live objects (asyncio subprocesses, pidfds, cgroup paths) keyed
by the handle; whatever it needs to recover goes into `handle.driver_state` (a sandbox driver puts
its cgroup path there, and `Limits` carries what it enforces).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Variables a plain process inherits from the agent: enough to find executables and behave
# sanely, but not the agent's own secrets or settings (Kubernetes containers inherit nothing).
PASSTHROUGH_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER")


@dataclass(frozen=True)
class Limits:
    """Resource limits. The process driver ignores them; a sandbox driver enforces them."""

    cpu_millis: int | None = None
    memory_bytes: int | None = None
    pids: int | None = None
    # The CPU request (a limit stands in for a missing one): the sandbox's CPU weight.
    cpu_request_millis: int | None = None


@dataclass(frozen=True)
class ProcessSpec:
    """Everything a driver needs to start one pod's process, decoupled from the API models.

    `env` is the pod's own environment (spec.env); the driver adds PORT variables from `ports`
    (see `port_environment`) and the few passthrough variables of the host. `primary_port` is the
    value of `$PORT` (the first declared port). Stdout and stderr are appended to `log_path`.
    """

    argv: list[str]
    cwd: Path
    log_path: Path
    pod_uid: str
    pod_name: str
    namespace: str = "default"
    env: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    primary_port: int | None = None
    limits: Limits = field(default_factory=Limits)
    # The pod's Deployment (or other owner) name: sandboxed pods of one owner share a uid.
    owner: str = ""


@dataclass(frozen=True)
class StartError:
    """A start that failed before the process ran. `reason` is CamelCase, for Pod status."""

    reason: str  # "ExecutableNotFound" | "StartError"
    message: str


@dataclass(frozen=True)
class ExitStatus:
    """How a process group leader ended. `signal` is set when a signal killed it.

    For an adopted process (not our child) the exit code is unknowable: both fields are None and
    the reason says so.
    """

    exit_code: int | None
    signal: int | None
    reason: str
    started_at: float
    finished_at: float
    message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.signal is None

    @property
    def ran_for(self) -> float:
        """Seconds from the start to the end of the run."""
        return self.finished_at - self.started_at


@dataclass(frozen=True)
class TaskHandle:
    """Persistable identity of a running task. `create_time` tells our pid from a reused one."""

    driver: str
    pod_uid: str
    pid: int
    pgid: int
    create_time: float
    started_at: float
    driver_state: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["driver_state"] = dict(self.driver_state)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskHandle:
        return cls(
            driver=str(data["driver"]),
            pod_uid=str(data["pod_uid"]),
            pid=int(data["pid"]),
            pgid=int(data["pgid"]),
            create_time=float(data["create_time"]),
            started_at=float(data["started_at"]),
            driver_state=dict(data.get("driver_state") or {}),
        )


@dataclass(frozen=True)
class TaskInfo:
    """A snapshot for `inspect`: is the leader alive, and what the group uses."""

    running: bool
    pids: list[int]
    cpu_seconds: float = 0.0
    memory_bytes: int = 0


class Driver(Protocol):
    """Runs pods as process groups. Implementations: ProcessDriver, (later) SandboxDriver."""

    name: str

    async def start(self, spec: ProcessSpec) -> TaskHandle | StartError: ...

    async def wait(self, handle: TaskHandle) -> ExitStatus: ...

    async def signal(self, handle: TaskHandle, signum: int) -> None: ...

    async def stop(self, handle: TaskHandle, grace_seconds: float) -> ExitStatus: ...

    async def recover(self, handle: TaskHandle) -> TaskHandle | ExitStatus: ...

    async def inspect(self, handle: TaskHandle) -> TaskInfo: ...


def port_variable(name: str) -> str:
    """`PORT_<NAME>`: the port name uppercased, anything not [A-Z0-9_] (e.g. '-') as '_'."""
    return "PORT_" + re.sub(r"[^A-Z0-9_]", "_", name.upper())


def port_environment(ports: Mapping[str, int], primary_port: int | None) -> dict[str, str]:
    """`PORT` (the primary port) and one `PORT_<NAME>` per named port."""
    env = {port_variable(name): str(number) for name, number in ports.items() if name}
    if primary_port is not None:
        env["PORT"] = str(primary_port)
    return env


def build_environment(spec: ProcessSpec, host_env: Mapping[str, str]) -> dict[str, str]:
    """The full environment of a pod's process; the pod's own values win over the host's."""
    env = {key: host_env[key] for key in PASSTHROUGH_VARIABLES if key in host_env}
    env.update(
        SHOAL_POD_NAME=spec.pod_name,
        SHOAL_POD_NAMESPACE=spec.namespace,
        SHOAL_POD_UID=spec.pod_uid,
    )
    env.update(port_environment(spec.ports, spec.primary_port))
    env.update(spec.env)
    return env
