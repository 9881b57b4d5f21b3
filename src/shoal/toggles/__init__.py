"""Feature toggles: evaluation engine, stable hashing, the Python SDK and an OpenFeature provider.

Public API: `ToggleClient` (SDK), `ShoalProvider` (OpenFeature), `evaluate`/`compile_toggle`/
`Evaluation` (engine), `bucket` (hashing, shared with canary cohorts). Everything is imported
lazily: `shoal.api.featuretoggle` imports `shoal.toggles.semver`, and the canary strategy only
needs `shoal.toggles.hashing`, so importing the package must not pull in the SDK or the engine.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.toggles.client import ToggleClient
    from shoal.toggles.engine import CompiledToggle, Evaluation, compile_toggle, evaluate
    from shoal.toggles.hashing import bucket
    from shoal.toggles.provider import ShoalProvider

_HOMES = {
    "ToggleClient": "shoal.toggles.client",
    "ShoalProvider": "shoal.toggles.provider",
    "CompiledToggle": "shoal.toggles.engine",
    "Evaluation": "shoal.toggles.engine",
    "compile_toggle": "shoal.toggles.engine",
    "evaluate": "shoal.toggles.engine",
    "bucket": "shoal.toggles.hashing",
}

__all__ = [
    "CompiledToggle",
    "Evaluation",
    "ShoalProvider",
    "ToggleClient",
    "bucket",
    "compile_toggle",
    "evaluate",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(name)
    return getattr(import_module(_HOMES[name]), name)
