"""API errors and the Kubernetes-shaped `Status` body that carries them over HTTP.

Raised by the store and the server, re-raised by the client from HTTP responses, printed by the
CLI. A validation error lists every cause with its field path (`spec.template.spec.ports[0].name`).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class Cause:
    """One reason a request was rejected: the field path and what is wrong with it."""

    __slots__ = ("field", "message", "reason")

    def __init__(self, field: str, message: str, reason: str = "FieldValueInvalid") -> None:
        self.field = field
        self.message = message
        self.reason = reason

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "reason": self.reason}

    def __repr__(self) -> str:
        return f"Cause({self.field!r}, {self.message!r})"


class ApiError(Exception):
    """Base of all API errors. `code` is the HTTP status, `reason` the Status reason."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, causes: list[Cause] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.causes = causes or []

    def to_status(self) -> dict[str, Any]:
        """The `Status` object the server answers with."""
        body: dict[str, Any] = {
            "apiVersion": "shoal/v1",
            "kind": "Status",
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
        }
        if self.causes:
            body["details"] = {"causes": [cause.to_json() for cause in self.causes]}
        return body

    def __str__(self) -> str:
        if not self.causes:
            return self.message
        lines = [self.message] + [f"  {c.field}: {c.message}" for c in self.causes]
        return "\n".join(lines)


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class NotFound(ApiError):
    code = 404
    reason = "NotFound"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"


class Conflict(ApiError):
    """A stale resourceVersion: someone else wrote first. Re-read and retry."""

    code = 409
    reason = "Conflict"


class Gone(ApiError):
    """A watch asked for a revision older than the kept history. Re-list and watch again."""

    code = 410
    reason = "Expired"


class Invalid(ApiError):
    """A document failed validation; `causes` names every bad field."""

    code = 422
    reason = "Invalid"


class Unavailable(ApiError):
    code = 503
    reason = "ServiceUnavailable"


class InsufficientStorage(ApiError):
    """The server's disk is full: the write was not stored (nothing stored before is lost);
    it can be sent again once there is space (HTTP 507, RFC 4918)."""

    code = 507
    reason = "InsufficientStorage"


_BY_REASON: dict[str, type[ApiError]] = {
    cls.reason: cls
    for cls in (
        BadRequest, NotFound, AlreadyExists, Conflict, Gone, Invalid, Unavailable,
        InsufficientStorage,
    )
}  # fmt: skip


def error_from_status(code: int, body: dict[str, Any] | None) -> ApiError:
    """Rebuild the typed error from a Status body (used by the client)."""
    body = body or {}
    reason = str(body.get("reason", ""))
    cls = _BY_REASON.get(reason)
    if cls is None:
        cls = next((c for c in _BY_REASON.values() if c.code == code), ApiError)
    causes = [
        Cause(str(c.get("field", "")), str(c.get("message", "")), str(c.get("reason", "")))
        for c in (body.get("details") or {}).get("causes", [])
    ]
    error = cls(str(body.get("message") or f"HTTP {code}"), causes)
    error.code = code
    return error


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """Turn a pydantic error location into a Kubernetes field path: `spec.ports[0].name`."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union[")):
            continue  # validator wrappers pydantic inserts into the location
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def causes_from_validation(error: ValidationError, prefix: str = "") -> list[Cause]:
    """Every pydantic error as a `Cause` with a field path; wire (camelCase) names."""
    causes = []
    for item in error.errors(include_url=False):
        kind = item.get("type", "")
        reason = {
            "extra_forbidden": "FieldValueNotSupported",
            "missing": "FieldValueRequired",
        }.get(kind, "FieldValueInvalid")
        message = item.get("msg", "invalid")
        if kind == "extra_forbidden":
            message = "unknown field"
        message = message.removeprefix("Value error, ")
        causes.append(Cause(field_path(tuple(item.get("loc", ())), prefix), message, reason))
    return causes
