"""Counter-based random numbers for numba kernels: every draw is a pure function of (seed, counter).

The generator is SplitMix64's output function applied to ``key(seed) + counter * golden``: a bijective 64-bit mix
with good avalanche, so draws keyed by a sample's index are independent of which thread computes them or in which
order. A sample that needs more than one draw (rejection) continues the chain with :func:`next_u64`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11), np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_INV53 = 1.0 / 9007199254740992.0
_INV32 = 1.0 / 4294967296.0


@njit(inline="always", cache=True)
def mix64(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def seed_key(seed: int) -> np.uint64:
    """The 64-bit key of a user-facing seed (any Python int; negative seeds and seeds >= 2**64 are folded)."""
    s = int(seed) & 0xFFFFFFFFFFFFFFFF
    z = (s + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return np.uint64(z ^ (z >> 31))


@njit(inline="always", cache=True)
def draw_u64(key: np.uint64, counter: np.int64) -> np.uint64:
    """The first draw of sample ``counter``."""
    return mix64(key + np.uint64(counter) * GOLDEN)


@njit(inline="always", cache=True)
def next_u64(x: np.uint64) -> np.uint64:
    """The next draw in a sample's chain."""
    return mix64(x + GOLDEN)


@njit(inline="always", cache=True)
def to_unit(x: np.uint64) -> float:
    """A float64 in [0, 1) from the top 53 bits."""
    return float(x >> _S11) * _INV53


@njit(inline="always", cache=True)
def to_open_unit(x: np.uint64) -> float:
    """A float64 in (0, 1) from the top 53 bits."""
    return (float(x >> _S11) + 0.5) * _INV53


@njit(inline="always", cache=True)
def below(x: np.uint64, n: np.int64) -> np.int64:
    """An integer in [0, n) from the top 32 bits (multiply-shift; n < 2**32, bias at most n / 2**32)."""
    return np.int64(((x >> _S32) * np.uint64(n)) >> _S32)


@njit(inline="always", cache=True)
def low_unit(x: np.uint64) -> float:
    """A float64 in [0, 1) from the low 32 bits (independent of :func:`below`'s bits)."""
    return float(x & _LOW32) * _INV32
