"""Event: what happened and why, shown by `shoal describe` and `shoal events`.

Written by every controller and the agent through `shoal.events.record` (not by users).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from shoal.api.base import ApiModel
from shoal.api.meta import Resource


class ObjectReference(ApiModel):
    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None


class EventSource(ApiModel):
    component: str
    host: str | None = None


class Event(Resource):
    KIND: ClassVar[str] = "Event"
    PLURAL: ClassVar[str] = "events"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ev",)
    HAS_STATUS: ClassVar[bool] = False

    kind: str = "Event"
    involved_object: ObjectReference
    reason: str
    message: str = ""
    type: Literal["Normal", "Warning"] = "Normal"
    count: int = 1
    first_timestamp: datetime | None = None
    last_timestamp: datetime | None = None
    source: EventSource | None = None
