"""What the agent runner shares with its pod workers: the API client and caches, the data plane,
the drivers, ports, records and events. Built once by the runner (`runner.Agent`); unit tests
build one with FakeDriver and MemoryEnvoySink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shoal.agent.dataplane import DataPlane
from shoal.agent.drivers.base import Driver, StartError
from shoal.agent.ports import PortAllocator
from shoal.agent.records import PodRecords
from shoal.agent.writeslots import WriteSlots
from shoal.api.pod import Pod
from shoal.api.service import Service
from shoal.client import AsyncClient
from shoal.controllers.informer import Informer
from shoal.events import EventRecorder


class DriverChoice:
    """Which driver runs a pod: the protocol's implementations by name, and the rule."""

    def __init__(self, drivers: dict[str, Driver], choose: Callable[[Pod], str | StartError]):
        self.drivers = drivers
        self._choose = choose

    def for_pod(self, pod: Pod) -> Driver | StartError:
        name = self._choose(pod)
        return name if isinstance(name, StartError) else self.drivers[name]

    def by_name(self, name: str) -> Driver:
        return self.drivers[name]


@dataclass
class AgentContext:
    """What every pod worker shares; built by the agent runner."""

    client: AsyncClient
    node_name: str
    server_url: str
    data_dir: Path
    dataplane: DataPlane
    drivers: DriverChoice
    ports: PortAllocator
    records: PodRecords
    recorder: EventRecorder
    pods: Informer[Pod]
    services: Informer[Service]
    routing_changed: Callable[[], None]
    address: str = "127.0.0.1"
    drain_timeout: float = 30.0
    drain_before_stop: bool = True  # False only as a test knob (see runner.SKIP_DRAIN_VARIABLE)
    # Pods whose readiness probe passes, known here before their status says so: the routing
    # table takes them in at once, and one status write then sets ContainersReady and Ready.
    locally_ready: set[str] = field(default_factory=set)
    # At most a few pod writes in flight for the whole node, readiness changes first.
    write_slots: WriteSlots = field(default_factory=WriteSlots)
