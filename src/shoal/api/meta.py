"""Object metadata, owner references and conditions shared by every kind.

`ObjectMeta` is what users write (name, namespace, labels, annotations) plus what the system
fills in (uid, resourceVersion, generation, creationTimestamp, deletionTimestamp). The API
server owns the system fields: whatever a client sends for them on create is replaced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator

from shoal.api.base import ApiModel
from shoal.api.names import check_dns_label, check_labels, check_object_name

API_VERSION: Literal["shoal/v1"] = "shoal/v1"
DEFAULT_NAMESPACE = "default"

ObjectName = Annotated[str, AfterValidator(check_object_name)]


def now_utc() -> datetime:
    """The current time, timezone-aware, as every timestamp in the API is."""
    return datetime.now(UTC)


class OwnerReference(ApiModel):
    """Points from a dependent (a Pod) to its owner (a ReplicaSet); drives garbage collection."""

    api_version: str = API_VERSION
    kind: str
    name: ObjectName
    uid: str
    controller: bool = False
    block_owner_deletion: bool | None = None

    @classmethod
    def controller_of(cls, kind: str, owner: ObjectMeta) -> OwnerReference:
        """The reference a controller puts on what it creates (`owner` controls it; it is
        garbage-collected with the owner), with blockOwnerDeletion set as Kubernetes does."""
        return cls(
            kind=kind,
            name=owner.name,
            uid=owner.uid or "",
            controller=True,
            block_owner_deletion=True,
        )


class ObjectMeta(ApiModel):
    """Kubernetes-shaped metadata. Cluster-scoped kinds (Node) have `namespace` None."""

    name: ObjectName
    namespace: str | None = DEFAULT_NAMESPACE
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    owner_references: list[OwnerReference] = Field(default_factory=list)
    finalizers: list[str] = Field(default_factory=list)

    @field_validator("namespace")
    @classmethod
    def _namespace_syntax(cls, value: str | None) -> str | None:
        return None if value is None else check_dns_label(value)

    @field_validator("labels")
    @classmethod
    def _label_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)

    @field_validator("annotations")
    @classmethod
    def _annotation_keys(cls, value: dict[str, str]) -> dict[str, str]:
        check_labels({key: "" for key in value})
        return value

    def controller_ref(self) -> OwnerReference | None:
        """The owner reference marked `controller: true`, if any."""
        return next((ref for ref in self.owner_references if ref.controller), None)


class Condition(ApiModel):
    """A status condition (`Available`, `Progressing`, `Ready`...) as in Kubernetes."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None
    last_update_time: datetime | None = None


def set_condition(conditions: list[Condition], new: Condition, now: datetime) -> list[Condition]:
    """Return `conditions` with `new` replacing the one of its type.

    The transition time only moves when the status changes, so "since when" stays meaningful.
    """
    result: list[Condition] = []
    replaced = False
    for old in conditions:
        if old.type != new.type:
            result.append(old)
            continue
        replaced = True
        same = old.status == new.status
        transition = old.last_transition_time if same else now
        result.append(
            new.model_copy(
                update={"last_transition_time": transition or now, "last_update_time": now}
            )
        )
    if not replaced:
        result.append(new.model_copy(update={"last_transition_time": now, "last_update_time": now}))
    return result


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of the given type, if present."""
    return next((c for c in conditions if c.type == type_), None)


class Resource(ApiModel):
    """Base of every kind: apiVersion, kind, metadata. Subclasses add spec and status.

    Class attributes describe the kind to the registry and the HTTP API.
    """

    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    NAMESPACED: ClassVar[bool] = True
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()
    HAS_STATUS: ClassVar[bool] = True

    api_version: Literal["shoal/v1"] = API_VERSION
    kind: str
    metadata: ObjectMeta

    @field_validator("kind")
    @classmethod
    def _kind_matches(cls, value: str) -> str:
        if cls.KIND and value != cls.KIND:
            raise ValueError(f"must be {cls.KIND!r}")
        return value

    @classmethod
    def new(cls, name: str, namespace: str | None = DEFAULT_NAMESPACE, **fields: Any) -> Any:
        """Convenience constructor for code and tests: `Pod.new("web-1", spec=...)`."""
        meta = ObjectMeta(name=name, namespace=namespace if cls.NAMESPACED else None)
        return cls(kind=cls.KIND, metadata=meta, **fields)

    @property
    def key(self) -> tuple[str, str | None, str]:
        """(kind, namespace, name): the identity of an object in the store."""
        return (self.kind, self.metadata.namespace, self.metadata.name)
