"""Port allocator: distinct ports, skips busy ones, idempotent per owner, release, restore."""

from __future__ import annotations

import socket

import pytest

from shoal.agent.ports import PortAllocator, PortsExhaustedError, can_bind


def allocator(busy: set[int] | None = None, first: int = 100, last: int = 104) -> PortAllocator:
    blocked = busy or set()
    return PortAllocator(
        first=first, last=last, is_free=lambda port: port not in blocked, start=first
    )


def test_distinct_ports_per_name_and_owner() -> None:
    ports = allocator()
    a = ports.allocate("a", ["http", "admin"])
    b = ports.allocate("b")
    assert a == {"http": 100, "admin": 101}
    assert b == {"": 102}
    assert ports.in_use() == {100, 101, 102}


def test_allocation_is_idempotent_per_owner() -> None:
    ports = allocator()
    first = ports.allocate("a", ["http"])
    again = ports.allocate("a", ["http", "grpc"])
    assert again["http"] == first["http"] and again["grpc"] != first["http"]


def test_busy_ports_are_skipped() -> None:
    ports = allocator(busy={100, 101})
    assert ports.allocate("a") == {"": 102}


def test_release_and_round_robin_reuse() -> None:
    ports = allocator()
    ports.allocate("a")
    ports.release("a")
    assert ports.in_use() == frozenset()
    assert ports.allocate("b") == {"": 101}, "a just-released port is not reused at once"
    ports.allocate("c", ["x", "y", "z"])
    assert ports.allocate("d") == {"": 100}, "wraps around to released ports"


def test_exhaustion_hands_out_nothing() -> None:
    ports = allocator(last=101)
    ports.allocate("a")
    with pytest.raises(PortsExhaustedError):
        ports.allocate("b", ["x", "y"])
    assert ports.in_use() == {100}
    assert ports.ports_of("b") == {}


def test_restore_from_snapshot() -> None:
    ports = allocator()
    ports.allocate("a", ["http"])
    ports.restore("fixed", {"web": 103})
    rebuilt = allocator()
    for owner, held in ports.snapshot().items():
        rebuilt.restore(owner, held)
    assert rebuilt.in_use() == {100, 103}
    assert rebuilt.allocate("b", ["p", "q"]) == {"p": 101, "q": 102}


def test_real_bind_check_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not can_bind("127.0.0.1", port)
        with pytest.raises(PortsExhaustedError):
            PortAllocator(first=port, last=port).allocate("a")


def test_bad_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="bad port range"):
        PortAllocator(first=10, last=5)
    with pytest.raises(ValueError, match="outside"):
        PortAllocator(first=10, last=20, start=30)


def test_default_start_is_inside_the_range() -> None:
    for _ in range(20):
        port = PortAllocator(first=100, last=103, is_free=lambda _: True).allocate("a")[""]
        assert 100 <= port <= 103
