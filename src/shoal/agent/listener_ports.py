"""Service ports that another process already holds.

Envoy rejects a listener it cannot bind, and with file-based LDS the rejection fails the whole
update: one Service whose port is taken would freeze every other change on the node (new
endpoints, drains). So before each sync the data plane leaves out the *new* listeners whose
port cannot be bound right now and reports them; the agent records a `PortInUse` Event on the
Service, and retries later. Listeners Envoy already holds are not tested (their port is taken
by Envoy itself).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Set
from dataclasses import replace

from shoal.agent.envoy import RoutingTable

Address = tuple[str, int]


def can_listen(address: str, port: int) -> bool:
    """Whether a listener could bind (address, port) now, with the options Envoy uses."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as error:
            return error.errno not in (errno.EADDRINUSE, errno.EACCES)
        return True


def leave_out_taken_ports(
    table: RoutingTable,
    held: Set[Address],
    probe: Callable[[str, int], bool] = can_listen,
) -> tuple[RoutingTable, dict[str, int]]:
    """The table without new listeners whose port is taken, and those listeners' names/ports."""
    kept = []
    taken: dict[str, int] = {}
    for listener in table.listeners:
        address = (listener.address, listener.port)
        if address in held or probe(*address):
            kept.append(listener)
        else:
            taken[listener.name] = listener.port
    if not taken:
        return table, {}
    return replace(table, listeners=tuple(kept)), taken
