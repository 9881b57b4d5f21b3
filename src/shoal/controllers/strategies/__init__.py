"""Rollout strategies, one pure step machine per module, looked up by `spec.strategy.type`.

Called by `shoal.controllers.deployment_plan`. To add a strategy (BlueGreen, Canary,
ParallelRun): write `strategies/<name>.py` with a class implementing
`shoal.controllers.strategies.base.Strategy` and add it to `STRATEGIES`.
"""

from __future__ import annotations

from shoal.controllers.strategies.base import Strategy
from shoal.controllers.strategies.bluegreen import BlueGreen
from shoal.controllers.strategies.canary import Canary
from shoal.controllers.strategies.parallel import ParallelRun
from shoal.controllers.strategies.recreate import Recreate
from shoal.controllers.strategies.rolling import RollingUpdate

STRATEGIES: dict[str, Strategy] = {
    "RollingUpdate": RollingUpdate(),
    "Recreate": Recreate(),
    "BlueGreen": BlueGreen(),
    "Canary": Canary(),
    "ParallelRun": ParallelRun(),
}


def strategy_for(type_name: str) -> Strategy:
    """The strategy for a `spec.strategy.type` (unknown types fall back to RollingUpdate)."""
    return STRATEGIES.get(type_name, STRATEGIES["RollingUpdate"])
