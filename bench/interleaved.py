"""Interleaved A/B measurement for a shared, noisy machine (used by bench/bench_sandbox.py).

Two things measured one after the other drift apart with whatever else runs on the machine.
Measured in short rounds in the order A B B A (one *block*), a load that rises or falls
linearly through a block hits A and B alike, so each block gives one ratio B/A that other load
hardly moves; the median of the blocks' ratios is the figure, and their spread (interquartile
range, and min-max) says how far one block can be trusted. A control block of A against a
second copy of A (A/A') measured the same way gives the method's own noise floor.

Pure: the caller passes `measure(label) -> float`; nothing here touches a clock or a process.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field


def block_order(first: str, second: str) -> tuple[str, str, str, str]:
    """The rounds of one block: A B B A."""
    return (first, second, second, first)


@dataclass
class Blocks:
    """Per-block results of `first` (A) and `second` (B): each block keeps the mean of its two
    rounds of each, so a block's ratio is B/A with linear drift cancelled."""

    first: str
    second: str
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)

    def add(self, a_rounds: list[float], b_rounds: list[float]) -> None:
        self.a.append(statistics.fmean(a_rounds))
        self.b.append(statistics.fmean(b_rounds))

    @property
    def ratios(self) -> list[float]:
        return [b / a for a, b in zip(self.a, self.b, strict=True) if a > 0]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else 0.0

    def quartiles(self) -> tuple[float, float]:
        ratios = sorted(self.ratios)
        if len(ratios) < 2:
            return (self.ratio, self.ratio)
        low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
        return (low, high)

    def describe(self, unit: str = "", digits: int = 0) -> str:
        low, high = self.quartiles()
        ratios = self.ratios or [0.0]
        return (
            f"{self.first} {statistics.median(self.a or [0.0]):,.{digits}f}{unit} | "
            f"{self.second} {statistics.median(self.b or [0.0]):,.{digits}f}{unit} | "
            f"ratio {self.second}/{self.first} median {self.ratio:.3f}x over "
            f"{len(self.ratios)} ABBA blocks (IQR {low:.3f}-{high:.3f}, "
            f"min-max {min(ratios):.3f}-{max(ratios):.3f})"
        )


def run_blocks(
    comparisons: list[tuple[Blocks, ...]],
    blocks: int,
    measure: Callable[[str], tuple[float, ...]],
) -> None:
    """`blocks` rounds of one A B B A block per comparison, the comparisons taking turns (so a
    control comparison sees the same conditions as the main one). `measure(label)` runs one
    round and returns one value per metric; a comparison is one `Blocks` per metric, all with
    the same two labels."""
    for _ in range(blocks):
        for metrics in comparisons:
            first, second = metrics[0].first, metrics[0].second
            values: dict[str, list[tuple[float, ...]]] = {first: [], second: []}
            for label in block_order(first, second):
                values[label].append(measure(label))
            for index, comparison in enumerate(metrics):
                comparison.add(
                    [round_[index] for round_ in values[first]],
                    [round_[index] for round_ in values[second]],
                )
