"""OpenFeature provider over `ToggleClient`, so services can use the vendor-neutral API:

    from openfeature import api
    api.set_provider(ShoalProvider())          # SHOAL_SERVER / SHOAL_NAMESPACE from env
    client = api.get_client()
    client.get_boolean_value("new-checkout", False, EvaluationContext("user-42"))

Resolution (all local, from the SDK's snapshot):
- boolean: the toggle's value.
- string: the assigned variant's name (the default when no variant is assigned).
- object / integer / float: the assigned variant's payload, when it has that type.
The OpenFeature targeting key becomes the `userId` attribute unless the context sets `userId`
itself (the default stickiness of shoal toggles). Reasons map as: disabled -> DISABLED,
constraint -> TARGETING_MATCH, rollout and variant -> SPLIT, default -> STATIC. An unknown
toggle answers the default with FLAG_NOT_FOUND; a payload of another type, TYPE_MISMATCH.
Snapshot changes are emitted as PROVIDER_CONFIGURATION_CHANGED.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.hook import Hook
from openfeature.provider import AbstractProvider, Metadata

from shoal.toggles.client import ToggleClient
from shoal.toggles.engine import Evaluation

T = TypeVar("T")

REASONS: dict[str, Reason] = {
    "disabled": Reason.DISABLED,
    "constraint": Reason.TARGETING_MATCH,
    "rollout": Reason.SPLIT,
    "variant": Reason.SPLIT,
    "default": Reason.STATIC,
}
ObjectValue = Sequence[FlagValueType] | Mapping[str, FlagValueType]


def context_attributes(context: EvaluationContext | None) -> dict[str, Any]:
    """OpenFeature context -> shoal context (targeting key -> `userId` unless given)."""
    if context is None:
        return {}
    attributes: dict[str, Any] = dict(context.attributes)
    if context.targeting_key is not None:
        attributes.setdefault("userId", context.targeting_key)
        attributes.setdefault("targetingKey", context.targeting_key)
    return attributes


class ShoalProvider(AbstractProvider):
    """OpenFeature provider answering from a `ToggleClient` (made from env when not given)."""

    def __init__(self, client: ToggleClient | None = None, **client_options: Any) -> None:
        super().__init__()
        self._own_client = client is None
        self.client = client if client is not None else ToggleClient(**client_options)
        self.client.on_change(self._changed)

    def get_metadata(self) -> Metadata:
        return Metadata(name="shoal")

    def get_provider_hooks(self) -> list[Hook]:
        return []

    def shutdown(self) -> None:
        if self._own_client:
            self.client.close()

    def _changed(self) -> None:
        if hasattr(self, "_on_emit"):  # attached to the OpenFeature API
            self.emit_provider_configuration_changed(
                ProviderEventDetails(message=f"toggles at revision {self.client.revision}")
            )

    def _answer(self, flag_key: str, context: EvaluationContext | None) -> Evaluation | None:
        return self.client.evaluate(flag_key, context_attributes(context))

    @staticmethod
    def _resolved(answer: Evaluation, value: T) -> FlagResolutionDetails[T]:
        return FlagResolutionDetails(
            value=value,
            reason=REASONS[answer.reason],
            variant=answer.variant,
            flag_metadata={"reason": answer.reason},
        )

    @staticmethod
    def _error(default: T, code: ErrorCode, message: str) -> FlagResolutionDetails[T]:
        return FlagResolutionDetails(
            value=default, reason=Reason.ERROR, error_code=code, error_message=message
        )

    def _not_found(self, flag_key: str, default: T) -> FlagResolutionDetails[T]:
        return self._error(
            default,
            ErrorCode.FLAG_NOT_FOUND,
            f"no toggle {flag_key!r} in namespace {self.client.namespace!r}",
        )

    def _payload(
        self, flag_key: str, default: T, context: EvaluationContext | None, kinds: tuple[type, ...]
    ) -> FlagResolutionDetails[T]:
        answer = self._answer(flag_key, context)
        if answer is None:
            return self._not_found(flag_key, default)
        if answer.variant is None:
            return FlagResolutionDetails(value=default, reason=REASONS[answer.reason])
        payload = answer.payload
        if not isinstance(payload, kinds) or isinstance(payload, bool):
            return self._error(
                default,
                ErrorCode.TYPE_MISMATCH,
                f"variant {answer.variant!r} of {flag_key!r} has a payload of type "
                f"{type(payload).__name__}",
            )
        return self._resolved(answer, cast(T, payload))

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        answer = self._answer(flag_key, evaluation_context)
        if answer is None:
            return self._not_found(flag_key, default_value)
        return self._resolved(answer, answer.value)

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        answer = self._answer(flag_key, evaluation_context)
        if answer is None:
            return self._not_found(flag_key, default_value)
        if answer.variant is None:
            return FlagResolutionDetails(value=default_value, reason=REASONS[answer.reason])
        return self._resolved(answer, answer.variant)

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        return self._payload(flag_key, default_value, evaluation_context, (int,))

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._payload(flag_key, default_value, evaluation_context, (float, int))

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: ObjectValue,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[ObjectValue]:
        return self._payload(flag_key, default_value, evaluation_context, (dict, list))
