"""The stable user bucket shared by feature toggles and canary stickiness.

One user must see one consistent world: a user in a canary's 20% cohort (stickiness on the
`x-user-id` header) is also in a toggle's 20% rollout (stickiness on `userId`) when the values
are equal. Both therefore call `bucket()` with the same seed (the default, empty seed).

Formula (other languages can reproduce it exactly):

    bucket(value, seed) = (murmur3_x86_32(utf8(seed + ":" + value), hash_seed=0) mod 100) + 1

where murmur3_x86_32 is read as an unsigned 32-bit integer. The result is in 1..100, and a
user is inside a P% cohort when `bucket <= P`. Cohorts are therefore nested: raising P keeps
every user who was already in (monotonic rollout), and P=0 / P=100 mean nobody / everybody.

Callers: `shoal.toggles.engine` (rollout with the shared seed, variants with the toggle name
as seed so variant and rollout are independent) and the canary strategy (sticky cohorts).
"""

from __future__ import annotations

from typing import Any

import mmh3

#: The seed for rollout cohorts, shared with the canary strategy's sticky cohorts.
COHORT_SEED = ""


def bucket(value: str, seed: str = COHORT_SEED) -> int:
    """The 1..100 bucket of `value` (see module docstring for the exact formula)."""
    return int(mmh3.hash(f"{seed}:{value}", 0, signed=False)) % 100 + 1


def in_cohort(value: str, percentage: float, seed: str = COHORT_SEED) -> bool:
    """True when `value` falls into the first `percentage` % of buckets."""
    return bucket(value, seed) <= percentage


def as_text(value: Any) -> str:
    """Canonical text of a context value, so `42`, `42.0` and `"42"` hash alike.

    JSON booleans become `true`/`false` (as any non-Python client would spell them).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
