"""Pod: one running instance, a process group on a node.

There are no containers and no images: a pod's spec says what to execute (`command`, `args`,
`env`, `workingDir`), which ports it listens on (a port without a number gets one allocated on
its node, passed as `$PORT` and `$PORT_<NAME>`), how to probe it and how to stop it.
Field names follow Kubernetes' Container wherever the concept is the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from shoal.api.base import ApiModel
from shoal.api.meta import Condition, Resource
from shoal.api.names import check_dns_label, check_env_name, check_labels
from shoal.api.quantity import check_quantity, parse_bytes, parse_cpu_millis

Quantity = Annotated[str, AfterValidator(check_quantity)]
PortNumber = Annotated[int, Field(ge=1, le=65535)]


class EnvVar(ApiModel):
    name: Annotated[str, AfterValidator(check_env_name)]
    value: str = ""


class ContainerPort(ApiModel):
    """A port the process listens on. `containerPort` absent = allocate one on the node."""

    name: str | None = None
    container_port: PortNumber | None = None
    protocol: Literal["TCP"] = "TCP"

    @field_validator("name")
    @classmethod
    def _name_syntax(cls, value: str | None) -> str | None:
        return None if value is None else check_dns_label(value)


class HTTPHeader(ApiModel):
    name: str
    value: str


class HTTPGetAction(ApiModel):
    path: str = "/"
    port: PortNumber | str
    host: str = "127.0.0.1"
    scheme: Literal["HTTP"] = "HTTP"
    http_headers: list[HTTPHeader] = Field(default_factory=list)


class TCPSocketAction(ApiModel):
    port: PortNumber | str
    host: str = "127.0.0.1"


class ExecAction(ApiModel):
    command: list[str] = Field(min_length=1)


class Probe(ApiModel):
    """Exactly one of httpGet, tcpSocket, exec; timings as in Kubernetes."""

    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    initial_delay_seconds: float = Field(default=0, ge=0)
    period_seconds: float = Field(default=10, gt=0)
    timeout_seconds: float = Field(default=1, gt=0)
    success_threshold: int = Field(default=1, ge=1)
    failure_threshold: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _exactly_one_handler(self) -> Probe:
        handlers = [h for h in (self.http_get, self.tcp_socket, self.exec) if h is not None]
        if len(handlers) != 1:
            raise ValueError("a probe needs exactly one of httpGet, tcpSocket, exec")
        return self


class SleepAction(ApiModel):
    seconds: float = Field(ge=0, le=3600)


class LifecycleHandler(ApiModel):
    exec: ExecAction | None = None
    sleep: SleepAction | None = None

    @model_validator(mode="after")
    def _exactly_one_handler(self) -> LifecycleHandler:
        if (self.exec is None) == (self.sleep is None):
            raise ValueError("a lifecycle handler needs exactly one of exec, sleep")
        return self


class Lifecycle(ApiModel):
    pre_stop: LifecycleHandler | None = None


class ResourceList(ApiModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None
    pids: int | None = Field(default=None, ge=1)


class ResourceRequirements(ApiModel):
    """`requests` are what the scheduler reserves on a node (a limit stands in for a missing
    request); `limits` are what a sandbox enforces. A request above its limit is invalid."""

    requests: ResourceList = Field(default_factory=ResourceList)
    limits: ResourceList = Field(default_factory=ResourceList)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourceRequirements:
        for name, parse in (("cpu", parse_cpu_millis), ("memory", parse_bytes)):
            request, limit = getattr(self.requests, name), getattr(self.limits, name)
            if request and limit and parse(request) > parse(limit):
                raise ValueError(
                    f"requests.{name} ({request}) must not be greater than limits.{name} ({limit})"
                )
        return self


class PodSpec(ApiModel):
    """What to run and how to look after it."""

    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    working_dir: str | None = None
    ports: list[ContainerPort] = Field(default_factory=list)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    termination_grace_period_seconds: float = Field(default=30, ge=0, le=3600)
    lifecycle: Lifecycle | None = None
    restart_policy: Literal["Always", "OnFailure", "Never"] = "Always"
    isolation: Literal["sandbox", "none"] | None = None
    node_name: str | None = None

    @model_validator(mode="after")
    def _unique_ports(self) -> PodSpec:
        names = [p.name for p in self.ports if p.name]
        if len(names) != len(set(names)):
            raise ValueError("port names must be unique")
        numbers = [p.container_port for p in self.ports if p.container_port]
        if len(numbers) != len(set(numbers)):
            raise ValueError("port numbers must be unique")
        return self


PodPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]


class ContainerStateTerminated(ApiModel):
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class PodStatus(ApiModel):
    """Written by the scheduler (PodScheduled) and the node agent (everything else)."""

    phase: PodPhase = "Pending"
    ready: bool = False
    reason: str | None = None
    message: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    host_ip: str | None = None
    pid: int | None = None
    process_start_time: float | None = None
    host_ports: dict[str, int] = Field(default_factory=dict)
    host_port: int | None = None
    restart_count: int = 0
    start_time: datetime | None = None
    last_state: ContainerStateTerminated | None = None


class Pod(Resource):
    KIND: ClassVar[str] = "Pod"
    PLURAL: ClassVar[str] = "pods"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("po",)

    kind: str = "Pod"
    spec: PodSpec
    status: PodStatus = Field(default_factory=PodStatus)


class PodTemplateSpec(ApiModel):
    """The pod template of a ReplicaSet or Deployment: labels (+ annotations) and a spec."""

    class TemplateMeta(ApiModel):
        labels: dict[str, str] = Field(default_factory=dict)
        annotations: dict[str, str] = Field(default_factory=dict)

        @field_validator("labels")
        @classmethod
        def _label_syntax(cls, value: dict[str, str]) -> dict[str, str]:
            return check_labels(value)

    metadata: TemplateMeta = Field(default_factory=TemplateMeta)
    spec: PodSpec
