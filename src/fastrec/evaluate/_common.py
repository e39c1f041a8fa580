"""Shared input handling for the protocols: CSR coercion, argument checks, a result type and a tiny progress line."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = ["RankingResult", "as_csr", "check_ks", "check_metrics", "check_ties", "Progress"]

TIES = ("pessimistic", "optimistic", "average")


def as_csr(x, name: str) -> sp.csr_matrix:
    """A scipy CSR matrix from a scipy sparse matrix or any object with ``to_scipy()`` (fastrec.data.Interactions).

    Rows are users, columns items; row indices are sorted and duplicates summed.
    """
    if hasattr(x, "to_scipy") and not sp.issparse(x):
        x = x.to_scipy()
    if not sp.issparse(x):
        raise TypeError(f"{name}: expected a scipy.sparse matrix or an object with to_scipy(), got {type(x).__name__}")
    m = sp.csr_matrix(x)
    if not m.has_canonical_format:
        m = m.copy()
        m.sum_duplicates()
    m.sort_indices()
    return m


def check_ks(ks, n_items: int) -> tuple[int, ...]:
    """Validated cutoffs: integers with 1 <= K <= n_items."""
    if isinstance(ks, (int, np.integer)):
        ks = (int(ks),)
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks: at least one cutoff K is required")
    for k in ks:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
            raise ValueError(f"ks: cutoffs must be integers, got {k!r}")
        if k <= 0:
            raise ValueError(f"ks: K must be >= 1, got {k}")
        if k > n_items:
            raise ValueError(f"ks: K={k} exceeds the number of candidate items ({n_items})")
    return tuple(sorted(set(int(k) for k in ks)))


def check_metrics(metrics: Sequence[str] | str, allowed: Sequence[str]) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    if not metrics:
        raise ValueError("metrics: at least one metric is required")
    bad = [m for m in metrics if m not in allowed]
    if bad:
        raise ValueError(f"metrics: unknown {bad}; choose from {list(allowed)}")
    return metrics


def check_ties(ties: str, allowed: Sequence[str] = TIES) -> str:
    if ties not in allowed:
        raise ValueError(f"ties: expected one of {list(allowed)}, got {ties!r}")
    return ties


def check_users(users, n_users: int) -> np.ndarray:
    u = np.asarray(users.detach().cpu().numpy() if hasattr(users, "detach") else users).reshape(-1)
    if u.size and not np.issubdtype(u.dtype, np.integer):
        raise ValueError(f"users: expected integer user ids, got dtype {u.dtype}")
    u = u.astype(np.int64, copy=False)
    bad = (u < 0) | (u >= n_users)
    if bad.any():
        raise ValueError(f"users: {int(bad.sum())} id(s) outside [0, {n_users}), e.g. {int(u[bad][0])}")
    return u


@dataclass
class RankingResult:
    """Metric means of one protocol run, with the counts that say what was averaged.

    ``metrics`` maps ``"ndcg@20"``-style names to means over the ``n_users`` evaluated users (or test cases).
    ``n_skipped`` counts requested users left out because they had no (rankable) test item; ``n_relevant_excluded``
    counts test items dropped because they were also excluded (train items) or scored -inf.
    """

    metrics: dict[str, float]
    n_users: int
    n_skipped: int = 0
    n_relevant_excluded: int = 0
    seconds: float = 0.0
    protocol: str = ""
    settings: dict = field(default_factory=dict)
    per_user: dict[str, np.ndarray] | None = None
    users: np.ndarray | None = None

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]

    def __str__(self) -> str:
        body = ", ".join(f"{k}={v:.4f}" for k, v in self.metrics.items())
        return (f"{self.protocol}: {body} over {self.n_users} users ({self.n_skipped} skipped) "
                f"in {self.seconds:.2f} s")


class Progress:
    """A one-line stderr progress report (no dependency); silent when disabled."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled = total, label, enabled
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last >= 0.5 or self.done >= self.total:
            self._last = now
            rate = self.done / max(now - self.start, 1e-9)
            sys.stderr.write(f"\r{self.label}: {self.done}/{self.total} ({rate:,.0f}/s)")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
