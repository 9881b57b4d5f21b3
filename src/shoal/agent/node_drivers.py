"""Which drivers a node offers and which one a pod gets: plain processes always, the sandbox
where the machine can run it; a pod asking for the sandbox on a node without one gets a clear
start error instead of a silent downgrade.

Called by `runner.Agent` when it builds its context (unit tests pass their own DriverChoice).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from shoal.agent.context import DriverChoice
from shoal.agent.drivers.base import Driver, StartError
from shoal.agent.drivers.process import ProcessDriver
from shoal.agent.drivers.sandbox import SandboxDriver, driver_name_for
from shoal.api.pod import Pod


def choose_driver_rule(sandbox_ok: bool, reason: str) -> partial[str | StartError]:
    return partial(_choose_driver, sandbox_ok, reason)


def _choose_driver(sandbox_ok: bool, reason: str, pod: Pod) -> str | StartError:
    name = driver_name_for(pod.spec.isolation)
    if name == "sandbox" and not sandbox_ok:
        return StartError(
            "SandboxUnavailable",
            f"{reason}; set spec.template.spec.isolation: none to run without a sandbox",
        )
    return name


def node_drivers(
    node_name: str,
    data_dir: Path,
    sandbox_ok: bool,
    reason: str,
    on_demoted: Callable[[str, str], None] | None = None,
) -> DriverChoice:
    """The real drivers: plain processes, and the sandbox when this node can run it.
    `on_demoted(pod_uid, why)` hears of sandboxed pods demoted for OOM kills."""
    drivers: dict[str, Driver] = {"process": ProcessDriver()}
    if sandbox_ok:
        drivers["sandbox"] = SandboxDriver(
            node_name,
            masked_dirs=[data_dir],
            pods_root=data_dir / "pods",
            on_demoted=on_demoted,
            oom_ledger_dir=data_dir / "oom-kills",
        )
    return DriverChoice(drivers, choose_driver_rule(sandbox_ok, reason))
