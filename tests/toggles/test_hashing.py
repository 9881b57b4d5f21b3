"""The shared bucket: exact formula (against an independent murmur3), spread, monotonic rollout
and the canary/toggle cohort equivalence the issue asks for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.api.featuretoggle import FeatureToggleSpec
from shoal.toggles.engine import compile_toggle, evaluate
from shoal.toggles.hashing import as_text, bucket, in_cohort

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text())


def reference_murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 written from the published algorithm, to check mmh3's use."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    rounded = len(data) - len(data) % 4
    for i in range(0, rounded, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[rounded:]
    k = 0
    for index, byte in enumerate(tail):
        k |= byte << (8 * index)
    if tail:
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


@pytest.mark.parametrize("vector", VECTORS["hash"], ids=lambda v: f"{v['seed']}:{v['value']}")
def test_bucket_matches_vectors_and_the_documented_formula(vector: dict[str, object]) -> None:
    value, seed = str(vector["value"]), str(vector["seed"])
    assert bucket(value, seed) == vector["bucket"]
    expected = reference_murmur3_32(f"{seed}:{value}".encode()) % 100 + 1
    assert bucket(value, seed) == expected


def test_buckets_cover_1_to_100() -> None:
    seen = {bucket(f"user-{i}") for i in range(5000)}
    assert seen == set(range(1, 101))


def test_rollout_25_percent_over_10000_users_and_raising_to_50_is_monotonic() -> None:
    users = [f"user-{i}" for i in range(10_000)]

    def enabled_at(percentage: int) -> set[str]:
        spec = FeatureToggleSpec.model_validate(
            {"enabled": True, "rollout": {"percentage": percentage, "stickiness": "userId"}}
        )
        toggle = compile_toggle("new-checkout", spec)
        return {user for user in users if evaluate(toggle, {"userId": user}).value}

    at_25, at_50 = enabled_at(25), enabled_at(50)
    assert 2300 <= len(at_25) <= 2700
    assert 4800 <= len(at_50) <= 5200
    assert at_25 <= at_50  # nobody loses the feature when the rollout grows


def test_canary_cohort_equals_toggle_rollout_for_the_same_user() -> None:
    """The canary strategy puts a request in its 20% cohort when
    bucket(header x-user-id) <= 20; a toggle at 20% on userId must agree for every user."""
    spec = FeatureToggleSpec.model_validate(
        {"enabled": True, "rollout": {"percentage": 20, "stickiness": "userId"}}
    )
    toggle = compile_toggle("any-name-at-all", spec)
    disagreements = []
    for i in range(2000):
        header_value = f"u{i}"
        in_canary = in_cohort(header_value, 20)
        if in_canary != evaluate(toggle, {"userId": header_value}).value:
            disagreements.append(header_value)
    assert disagreements == []
    assert 300 <= sum(in_cohort(f"u{i}", 20) for i in range(2000)) <= 500


def test_own_seed_gives_an_independent_cohort() -> None:
    shared = {f"u{i}" for i in range(2000) if in_cohort(f"u{i}", 20)}
    seeded = {f"u{i}" for i in range(2000) if in_cohort(f"u{i}", 20, seed="other")}
    assert shared != seeded
    assert len(shared & seeded) < len(shared) / 2


def test_canonical_text_of_context_values() -> None:
    assert [as_text(v) for v in ("42", 42, 42.0, 1.5, True, False)] == [
        "42",
        "42",
        "42",
        "1.5",
        "true",
        "false",
    ]
