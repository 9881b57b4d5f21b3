"""Drivers run one pod as a process group behind the `Driver` protocol (see `base`).

`process.ProcessDriver` runs plain processes in their own session; a sandbox driver (namespaces
and a cgroup per pod) fits behind the same protocol.
"""

from shoal.agent.drivers.base import (
    Driver,
    ExitStatus,
    Limits,
    ProcessSpec,
    StartError,
    TaskHandle,
    TaskInfo,
)

__all__ = [
    "Driver",
    "ExitStatus",
    "Limits",
    "ProcessSpec",
    "StartError",
    "TaskHandle",
    "TaskInfo",
]
