from __future__ import annotations

import pytest

from shoal.agent.sandbox.identity import (
    UID_BASE,
    UID_RANGE,
    Identity,
    allocate_identity,
    home_slot,
    identity_key,
)


def never(_: int) -> bool:
    return False


def test_same_key_same_identity_and_never_root() -> None:
    key = identity_key("default", "shop")
    first = allocate_identity(key, {}, never)
    assert first == allocate_identity(key, {}, never)
    assert first.uid == first.gid
    assert UID_BASE <= first.uid < UID_BASE + UID_RANGE
    assert first.uid == UID_BASE + home_slot(key)


def test_namespaces_separate_identities() -> None:
    assert allocate_identity("a/shop", {}, never) != allocate_identity("b/shop", {}, never)


def test_collision_probes_to_next_free_slot() -> None:
    key = "default/catalog"
    home = UID_BASE + home_slot(key)
    taken = {
        home: "default/other",
        home + 1 if home + 1 < UID_BASE + UID_RANGE else UID_BASE: "x/y",
    }
    got = allocate_identity(key, taken, never)
    assert got.uid not in taken
    # The holder of a slot keeps it.
    assert allocate_identity(key, {home: key}, never) == Identity(home, home)


def test_host_uids_are_skipped() -> None:
    key = "default/orders"
    home = UID_BASE + home_slot(key)
    got = allocate_identity(key, {}, lambda uid: uid == home)
    assert got.uid != home


def test_wraps_around_and_exhausts() -> None:
    got = allocate_identity("k", {UID_BASE: "other"}, never, base=UID_BASE, size=2)
    assert got.uid == UID_BASE + 1  # whatever the home slot, slot 0 is held
    with pytest.raises(RuntimeError, match="no free sandbox uid"):
        allocate_identity("k", {UID_BASE: "a", UID_BASE + 1: "b"}, never, size=2)
    with pytest.raises(ValueError, match="root"):
        allocate_identity("k", {}, never, base=0)
