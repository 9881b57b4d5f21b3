"""Port allocation for pods on 127.0.0.1: one port per pod and per named port.

Called by the agent runner before it starts a pod (`allocate`), when the pod is stopped for good
(`release`), and after an agent restart to rebuild what is handed out from the pods' statuses
(`restore`, e.g. from `status.hostPorts`) or from a persisted `snapshot()`.

A port is handed out only if this agent has not handed it out already AND it can be bound right
now (something else may listen there). Ports come from a range outside the kernel's ephemeral
range (32768-60999 on Linux) so outgoing connections do not take them; the cursor moves on
round-robin from a random start, so a just-released port is not reused at once (old
connections may linger). The bind check and the pod's own bind are not atomic: another program
may take the port in between. The pod then fails to bind and exits; a restart keeps its ports
(allocation is idempotent per owner), so the runner should `release` and `allocate` again when
it sees that, e.g. by calling `can_bind` on the pod's ports before a restart.
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Callable, Mapping, Sequence

DEFAULT_FIRST_PORT = 20000
DEFAULT_LAST_PORT = 29999


class PortsExhaustedError(RuntimeError):
    """No free port left in the agent's range."""


def can_bind(host: str, port: int) -> bool:
    """True if nothing holds (host, port). No SO_REUSEADDR: a port with connections still in
    TIME_WAIT counts as taken, which is the cautious answer for a new server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


class PortAllocator:
    """Hands out ports per owner (a pod uid). Not thread-safe; the agent uses one event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        first: int = DEFAULT_FIRST_PORT,
        last: int = DEFAULT_LAST_PORT,
        is_free: Callable[[int], bool] | None = None,
        start: int | None = None,
    ) -> None:
        """`start`: where the round-robin cursor begins; by default a random port of the range,
        so that two agents (or test runs) on one machine, or an agent and its previous
        incarnation, seldom race for the same port between our bind check and the pod's bind."""
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"bad port range {first}-{last}")
        self.host = host
        self.first = first
        self.last = last
        self._is_free = is_free if is_free is not None else (lambda port: can_bind(host, port))
        self._by_owner: dict[str, dict[str, int]] = {}
        self._taken: set[int] = set()
        self._cursor = random.randint(first, last) if start is None else start
        if not first <= self._cursor <= last:
            raise ValueError(f"start {start} is outside {first}-{last}")

    def allocate(self, owner: str, names: Sequence[str] = ("",)) -> dict[str, int]:
        """Ports for each name (use "" for an unnamed port). Idempotent: an owner that already
        holds a name keeps its port. Raises PortsExhaustedError (and hands out nothing) if full."""
        held = self._by_owner.get(owner, {})
        missing = [name for name in dict.fromkeys(names) if name not in held]
        fresh: dict[str, int] = {}
        try:
            for name in missing:
                fresh[name] = self._next_free()
                self._taken.add(fresh[name])
        except PortsExhaustedError:
            self._taken.difference_update(fresh.values())
            raise
        self._by_owner[owner] = {**held, **fresh}
        return {name: self._by_owner[owner][name] for name in names}

    def _next_free(self) -> int:
        size = self.last - self.first + 1
        for step in range(size):
            port = self.first + (self._cursor - self.first + step) % size
            if port not in self._taken and self._is_free(port):
                self._cursor = self.first + (port - self.first + 1) % size
                return port
        raise PortsExhaustedError(f"no free port in {self.first}-{self.last} on {self.host}")

    def restore(self, owner: str, ports: Mapping[str, int]) -> None:
        """Record ports an owner already holds (after a restart, or fixed containerPorts)."""
        self._by_owner.setdefault(owner, {}).update(ports)
        self._taken.update(ports.values())

    def release(self, owner: str) -> None:
        """Give back every port of the owner (pod stopped for good)."""
        self._taken.difference_update(self._by_owner.pop(owner, {}).values())

    def ports_of(self, owner: str) -> dict[str, int]:
        return dict(self._by_owner.get(owner, {}))

    def snapshot(self) -> dict[str, dict[str, int]]:
        """What is handed out, JSON-serialisable; feed each item back to `restore`."""
        return {owner: dict(ports) for owner, ports in self._by_owner.items()}

    def in_use(self) -> frozenset[int]:
        return frozenset(self._taken)
