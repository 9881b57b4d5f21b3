"""Unprivileged uid/gid for sandboxed pods, allocated per namespace + deployment.

Called by the sandbox driver (and the agent runner, which persists what it allocated).

A pod runs as a uid that no person and no system service owns: `UID_BASE + slot`, where the slot
is a stable hash of "namespace/owner" (owner = the Deployment, or the pod itself when it has none)
into a reserved range. No /etc/passwd entry is needed: the kernel only cares about numbers.
gid == uid, so a pod's files are private to its deployment's pods.

Collisions: two keys may hash to the same slot. `allocate_identity` then probes linearly to the
next free slot, skipping slots held by another key (the agent passes the uids of the pods it runs
or re-adopted) and uids that exist on the host (passwd/group). So a collision is resolved on the
node that sees it, and the same key keeps its uid while any of its pods run; a uid is only ever
re-used for another deployment once no pod of the first one is left on this node. The choice is
deterministic given the same occupancy, which keeps restarts of the agent stable.
"""

from __future__ import annotations

import grp
import hashlib
import pwd
from collections.abc import Callable, Mapping
from dataclasses import dataclass

UID_BASE = 200_000
UID_RANGE = 65_536


@dataclass(frozen=True)
class Identity:
    """The uid and gid a sandboxed pod runs as (never 0)."""

    uid: int
    gid: int


def identity_key(namespace: str, owner: str) -> str:
    """The allocation key: one identity per namespace + deployment."""
    return f"{namespace}/{owner}"


def home_slot(key: str, size: int = UID_RANGE) -> int:
    """The stable preferred slot of a key (sha256, so it does not depend on PYTHONHASHSEED)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % size


def host_uid_exists(uid: int) -> bool:
    """True when the host already uses this number as a user or group id."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
        except KeyError:
            continue
        return True
    return False


def allocate_identity(
    key: str,
    held: Mapping[int, str],
    host_uses: Callable[[int], bool] = host_uid_exists,
    base: int = UID_BASE,
    size: int = UID_RANGE,
) -> Identity:
    """Pick the uid for `key`: its home slot, or the next one not held by another key.

    `held` maps uids in use on this node to the key that holds them. Raises RuntimeError when
    the range is exhausted (65,536 deployments on one node).
    """
    if base <= 0:
        raise ValueError("the sandbox uid range must not include root")
    start = home_slot(key, size)
    for step in range(size):
        uid = base + (start + step) % size
        owner = held.get(uid)
        if owner == key:
            return Identity(uid, uid)
        if owner is None and not host_uses(uid):
            return Identity(uid, uid)
    raise RuntimeError(f"no free sandbox uid left in {base}..{base + size - 1}")
