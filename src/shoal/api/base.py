"""Pydantic base class for every API model.

Python attributes are snake_case, the wire format is camelCase as in Kubernetes
(`terminationGracePeriodSeconds`). Unknown fields are rejected (`extra="forbid"`) so that a
typo in a manifest is an error with a field path, not a silently ignored setting.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of all shoal API models: camelCase aliases, unknown fields forbidden."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=True,
    )

    def to_json(self) -> dict[str, Any]:
        """The wire form: camelCase keys, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Validate a wire-form document (raises pydantic.ValidationError)."""
        return cls.model_validate(data)
