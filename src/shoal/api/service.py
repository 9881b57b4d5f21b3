"""Service: a stable endpoint, an Envoy listener on every node, routing to ready pods chosen by
label selector. `targetPort` is a pod port number or the name of one of the pods' ports; absent,
it is the pods' first port.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from shoal.api.base import ApiModel
from shoal.api.meta import Resource
from shoal.api.names import check_labels
from shoal.api.pod import PortNumber


class ServiceSpec(ApiModel):
    selector: dict[str, str]
    port: PortNumber
    target_port: PortNumber | str | None = None
    timeout_seconds: float = Field(default=15, gt=0, le=3600)

    @field_validator("selector")
    @classmethod
    def _selector_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("must select at least one label")
        return check_labels(value)


class ServiceEndpoint(ApiModel):
    pod: str
    node: str | None = None
    ip: str
    port: int
    ready: bool


class ServiceStatus(ApiModel):
    endpoints: list[ServiceEndpoint] = Field(default_factory=list)


class Service(Resource):
    KIND: ClassVar[str] = "Service"
    PLURAL: ClassVar[str] = "services"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("svc",)

    kind: str = "Service"
    spec: ServiceSpec
    status: ServiceStatus = Field(default_factory=ServiceStatus)
