"""Side-by-side timing: candidates run interleaved in one process, each call warm, medians and ratios reported.

Interleaving (round r times every candidate, in an order rotated each round) spreads the machine's noise (other
processes, frequency changes) over all candidates alike, so the ratio of medians is far steadier than the times.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Timing", "time_interleaved"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one candidate: the median over rounds, and every round's value."""

    median: float
    rounds: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return self.median * 1e3


def _calls_per_round(fn: Callable[[], object], min_round_seconds: float) -> tuple[int, float]:
    """How many back-to-back calls make a round of about min_round_seconds, and that round's estimated length."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-9)
    calls = max(1, int(min_round_seconds / once))
    return calls, calls * once


def time_interleaved(
    candidates: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 15,
    warmup: int = 1,
    min_round_seconds: float = 0.02,
    max_seconds: float | None = 20.0,
    min_rounds: int = 3,
) -> dict[str, Timing]:
    """Times each zero-argument callable, interleaved with the others.

    Each candidate is called ``warmup`` times first, then in every round enough times back to back (at least once)
    that a round lasts about ``min_round_seconds``; the per-call time of a round is its mean, and the result is the
    median over ``rounds`` rounds. When all rounds would take longer than ``max_seconds`` (a slow baseline), fewer
    rounds run, never fewer than ``min_rounds`` (or ``rounds`` if smaller).
    """
    if not candidates:
        raise ValueError("time_interleaved: no candidates given")
    if rounds < 1:
        raise ValueError(f"time_interleaved: rounds must be >= 1, got {rounds}")
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    calls = {}
    round_seconds = 0.0
    for name in names:
        calls[name], seconds = _calls_per_round(candidates[name], min_round_seconds)
        round_seconds += seconds
    if max_seconds is not None:
        rounds = max(min(min_rounds, rounds), min(rounds, int(max_seconds / round_seconds)))
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, n = candidates[name], calls[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            per_round[name].append((time.perf_counter() - start) / n)
    return {name: Timing(statistics.median(t), tuple(t)) for name, t in per_round.items()}
