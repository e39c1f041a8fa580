"""Negative samplers in numba, exact and reproducible.

Every negative is a pure function of (seed, sample index): sample ``j`` of batch row ``b`` has index
``offset + b * n_neg + j``, and its random numbers come from a counter-based generator keyed on that index
(:mod:`fastrec.data._rng`). Results are therefore identical for a given seed at any thread count, and a batch split
in two calls (with ``offset``) gives the same negatives as one call.

- uniform over the items a user has not interacted with: the r-th non-positive item is found by one binary search in
  the user's sorted CSR row (``item = r + #{positives p_k with p_k - k <= r}``), which is exact, takes the same one
  search as a rejection test, and never loops, however dense the row; a user with every item raises;
- popularity^alpha (any item weights): Vose alias table, rejection of positives by binary search, and after
  ``max_tries`` rejections an exact draw from the user's remaining mass (walk the gaps between positives on the
  weights' prefix sums); a user whose positives hold all the mass raises;
- mixed: each negative is uniform with probability ``uniform_fraction``, else popularity;
- hard negatives from scores: the top-k non-positive items per row, or k sampled without replacement from
  softmax(scores / temperature) (Gumbel top-k);
- evaluation negatives: n distinct non-positive items per user (Floyd's algorithm on ranks, then the same rank-skip
  mapping), for the sampled-metrics protocol (e.g. 99 or 100 per user).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastrec.data._ids import show
from fastrec.data._rng import below, draw_u64, low_unit, next_u64, seed_key, to_open_unit, to_unit
from fastrec.data.interactions import Interactions

__all__ = [
    "NegativeSampler",
    "evaluation_negatives",
    "hard_negatives",
    "popularity_negatives",
    "uniform_negatives",
    "union",
]


# ---------------------------------------------------------------------------------------------------- kernels
_PREFETCH_DISTANCE = 16  # batch rows ahead: rows' CSR lines are requested this many rows before they are searched
_LINEAR_MAX = 128  # rows up to this many entries (8 cache lines) are scanned, longer ones binary-searched


@intrinsic
def _prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:
    """A read prefetch hint (llvm.prefetch) for arr[idx]: no load, no fault, no bounds check needed."""
    sig = types.void(arr, types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary, i = args
        aryty = signature.args[0]
        array = context.make_array(aryty)(context, builder, ary)
        ptr = cgutils.get_item_pointer(context, builder, aryty, array, [i])
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch")
        builder.call(fn, [i8p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


# Below this much work (draws, or scored candidates) a call runs on one thread: waking numba's thread pool costs
# more than the work itself (measured on a busy 2-core machine: 3-31 ms a call for 1,024 draws on 2 threads, 0.07 ms
# on one). Results never depend on the thread count (counter-based RNG), so this changes speed only.
PARALLEL_MIN_WORK = 1 << 16


@contextlib.contextmanager
def _threads_for(work: int) -> Iterator[None]:
    if work >= PARALLEL_MIN_WORK or numba.get_num_threads() == 1:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@njit(inline="always", cache=True)
def _rank_to_item(indices: np.ndarray, a: np.int64, d: np.int64, r: np.int64) -> np.int64:
    """The r-th (0-based) item not in the sorted row indices[a:a+d]: r + #{k : indices[a+k] - k <= r}
    (indices[a+k] - k is non-decreasing). Rows up to _LINEAR_MAX entries count with one vectorized pass (measured
    2x faster than a search in cache); longer rows use a branch-free binary search whose steps depend only on d."""
    if d <= _LINEAR_MAX:
        c = np.int64(0)
        for k in range(d):
            c += np.int64(indices[a + k]) - k <= r
        return r + c
    base = np.int64(0)
    n = d
    while n > 1:
        half = n >> 1
        mid = base + half
        base = mid if indices[a + mid] - mid <= r else base
        n -= half
    return r + base + (1 if indices[a + base] - base <= r else 0)


@njit(inline="always", cache=True)
def _contains(indices: np.ndarray, a: np.int64, d: np.int64, item: np.int64) -> bool:
    """Whether the sorted row indices[a:a+d] holds item (a vectorized pass over short rows, else a branch-free
    binary search)."""
    if d <= _LINEAR_MAX:
        c = np.int64(0)
        for k in range(d):
            c += np.int64(indices[a + k]) == item
        return c > 0
    base = np.int64(0)
    n = d
    while n > 1:
        half = n >> 1
        mid = base + half
        base = mid if indices[a + mid] <= item else base
        n -= half
    return indices[a + base] == item


@njit(cache=True, nogil=True)
def _group_order(users: np.ndarray, shift: int, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch positions ordered by user block (users >> shift), input order within a block, and the users in that
    order: a counting sort whose histogram fits the L1 cache. Sampling in this order walks the CSR arrays nearly
    sequentially."""
    n_blocks = (n_users >> shift) + 1
    start = np.zeros(n_blocks + 1, np.int64)
    for k in range(users.shape[0]):
        start[(users[k] >> shift) + 1] += 1
    for b in range(n_blocks):
        start[b + 1] += start[b]
    perm = np.empty(users.shape[0], np.int64)
    grouped = np.empty(users.shape[0], np.int64)
    for k in range(users.shape[0]):
        b = users[k] >> shift
        perm[start[b]] = k
        grouped[start[b]] = users[k]
        start[b] += 1
    return perm, grouped


@njit(cache=True, nogil=True)
def _build_alias(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vose's alias table (prob float64, alias int32) and the prefix sums cdf float64 [n+1] of non-negative weights."""
    n = weights.shape[0]
    cdf = np.zeros(n + 1, np.float64)
    for i in range(n):
        cdf[i + 1] = cdf[i] + weights[i]
    total = cdf[n]
    prob = np.zeros(n, np.float64)
    alias = np.arange(n).astype(np.int32)
    scaled = np.empty(n, np.float64)
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    ns = 0
    nl = 0
    for i in range(n):
        scaled[i] = weights[i] * n / total
        if scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    for k in range(nl):
        prob[large[k]] = 1.0
    for k in range(ns):  # round-off leftovers: keep only if they carry weight
        prob[small[k]] = 1.0 if weights[small[k]] > 0 else 0.0
    return prob, alias, cdf


@njit(cache=True, nogil=True)
def _exact_weighted(indices: np.ndarray, a: np.int64, b: np.int64, cdf: np.ndarray, u: float) -> np.int64:
    """A draw from the weights restricted to the items not in the sorted row indices[a:b] (-1: no mass left)."""
    n = cdf.shape[0] - 1
    pos_mass = 0.0
    for k in range(a, b):
        pos_mass += cdf[indices[k] + 1] - cdf[indices[k]]
    remaining = cdf[n] - pos_mass
    if remaining <= cdf[n] * 1e-12:
        return -1
    target = u * remaining
    acc = 0.0
    start = np.int64(0)
    last_nonempty = np.int64(-1)
    for k in range(a, b + 1):
        stop = np.int64(indices[k]) if k < b else n  # gap [start, stop)
        if stop > start:
            seg = cdf[stop] - cdf[start]
            if seg > 0:
                last_nonempty = k
                if target < acc + seg:
                    # smallest i in [start, stop) with cdf[i + 1] > cdf[start] + (target - acc)
                    t = cdf[start] + (target - acc)
                    lo = start
                    hi = stop - 1
                    while lo < hi:
                        mid = (lo + hi) >> 1
                        if cdf[mid + 1] > t:
                            hi = mid
                        else:
                            lo = mid + 1
                    return lo
                acc += seg
        if k < b:
            start = np.int64(indices[k]) + 1
    # round-off pushed the target past the end: the last item with weight in the last non-empty gap
    if last_nonempty < 0:
        return -1
    stop = np.int64(indices[last_nonempty]) if last_nonempty < b else n
    i = stop - 1
    while cdf[i + 1] - cdf[i] <= 0:
        i -= 1
    return i


@njit(inline="always", cache=True)
def _alias_draw(x: np.uint64, n_items: np.int64, prob: np.ndarray, alias: np.ndarray) -> np.int64:
    """One alias-table draw: the column from the top 32 bits, the coin from the low 32 bits."""
    c = below(x, n_items)
    return c if low_unit(x) < prob[c] else np.int64(alias[c])


@njit(cache=True, nogil=True)
def _weighted_draw(indices: np.ndarray, a: np.int64, d: np.int64, n_items: np.int64, prob: np.ndarray,
                   alias: np.ndarray, cdf: np.ndarray, x: np.uint64, tries: np.int64) -> np.int64:
    """A weighted negative: ``tries`` alias draws along the chain from x, rejecting positives, then (all rejected)
    an exact draw from the row's remaining mass with the chain's next number. -1: no mass left."""
    for _ in range(tries):
        cand = _alias_draw(x, n_items, prob, alias)
        if not _contains(indices, a, d, cand):
            return cand
        x = next_u64(x)
    return _exact_weighted(indices, a, a + d, cdf, to_unit(next_u64(x)))


@njit(cache=True, nogil=True, parallel=True)
def _sample_kernel(
    indptr: np.ndarray,
    indices: np.ndarray,
    users: np.ndarray,
    n_neg: int,
    n_items: int,
    key: np.uint64,
    offset: np.int64,
    uniform_fraction: float,
    prob: np.ndarray,
    alias: np.ndarray,
    cdf: np.ndarray,
    max_tries: int,
    group_shift: int,
) -> np.ndarray:
    """Negatives [len(users), n_neg] int32; -1 marks a user without any admissible negative.

    Rows are visited grouped by user block (``group_shift`` >= 0; -1: in input order); each negative's random
    stream is keyed on its input position, so the grouping changes the speed only."""
    b_count = users.shape[0]
    out = np.empty((b_count, n_neg), np.int32)
    if group_shift >= 0:
        perm, grouped = _group_order(users, group_shift, indptr.shape[0] - 1)
    else:
        perm, grouped = np.arange(b_count), users
    dist = _PREFETCH_DISTANCE
    for t in prange(b_count):
        # two-stage prefetch: the row pointers 2 * dist rows ahead, the row's lines dist rows ahead
        if t + 2 * dist < b_count:
            _prefetch(indptr, grouped[t + 2 * dist])
        if t + dist < b_count:
            u2 = grouped[t + dist]
            a2 = indptr[u2]
            b2 = indptr[u2 + 1]
            if b2 - a2 <= _LINEAR_MAX:  # every line of a row that will be scanned
                for k2 in range(a2, b2, 16):
                    _prefetch(indices, k2)
                if b2 > a2:
                    _prefetch(indices, b2 - 1)
            else:  # the lines a binary search starts with
                _prefetch(indices, a2)
                _prefetch(indices, (a2 + b2) >> 1)
                _prefetch(indices, b2 - 1)
        bi = perm[t]
        u = grouped[t]
        a = indptr[u]
        b = indptr[u + 1]
        d = b - a
        m = n_items - d
        base = offset + np.int64(bi) * n_neg
        j0 = 0
        if uniform_fraction >= 1.0 and m > 0 and d <= _LINEAR_MAX:
            # four uniform negatives per pass over a short row: one load of each entry, four vectorized counts
            # (the same draws and results as the one-at-a-time path below)
            while j0 + 4 <= n_neg:
                r0 = min(np.int64(to_unit(draw_u64(key, base + j0)) * m), m - 1)
                r1 = min(np.int64(to_unit(draw_u64(key, base + j0 + 1)) * m), m - 1)
                r2 = min(np.int64(to_unit(draw_u64(key, base + j0 + 2)) * m), m - 1)
                r3 = min(np.int64(to_unit(draw_u64(key, base + j0 + 3)) * m), m - 1)
                c0 = np.int64(0)
                c1 = np.int64(0)
                c2 = np.int64(0)
                c3 = np.int64(0)
                for k in range(d):
                    v = np.int64(indices[a + k]) - k
                    c0 += v <= r0
                    c1 += v <= r1
                    c2 += v <= r2
                    c3 += v <= r3
                out[bi, j0] = r0 + c0
                out[bi, j0 + 1] = r1 + c1
                out[bi, j0 + 2] = r2 + c2
                out[bi, j0 + 3] = r3 + c3
                j0 += 4
        elif uniform_fraction <= 0.0 and d <= _LINEAR_MAX:
            # four first tries per pass over a short row; a rejected one continues its own chain one at a time
            while j0 + 4 <= n_neg:
                x0 = draw_u64(key, base + j0)
                x1 = draw_u64(key, base + j0 + 1)
                x2 = draw_u64(key, base + j0 + 2)
                x3 = draw_u64(key, base + j0 + 3)
                q0 = _alias_draw(x0, n_items, prob, alias)
                q1 = _alias_draw(x1, n_items, prob, alias)
                q2 = _alias_draw(x2, n_items, prob, alias)
                q3 = _alias_draw(x3, n_items, prob, alias)
                f0 = np.int64(0)
                f1 = np.int64(0)
                f2 = np.int64(0)
                f3 = np.int64(0)
                for k in range(d):
                    v = np.int64(indices[a + k])
                    f0 += v == q0
                    f1 += v == q1
                    f2 += v == q2
                    f3 += v == q3
                out[bi, j0] = q0 if f0 == 0 else _weighted_draw(indices, a, d, n_items, prob, alias, cdf,
                                                                next_u64(x0), max_tries - 1)
                out[bi, j0 + 1] = q1 if f1 == 0 else _weighted_draw(indices, a, d, n_items, prob, alias, cdf,
                                                                    next_u64(x1), max_tries - 1)
                out[bi, j0 + 2] = q2 if f2 == 0 else _weighted_draw(indices, a, d, n_items, prob, alias, cdf,
                                                                    next_u64(x2), max_tries - 1)
                out[bi, j0 + 3] = q3 if f3 == 0 else _weighted_draw(indices, a, d, n_items, prob, alias, cdf,
                                                                    next_u64(x3), max_tries - 1)
                j0 += 4
        for j in range(j0, n_neg):
            x = draw_u64(key, base + j)
            use_uniform = uniform_fraction >= 1.0
            if not use_uniform and uniform_fraction > 0.0:
                use_uniform = low_unit(x) < uniform_fraction
                x = next_u64(x)
            if use_uniform:
                if m <= 0:
                    out[bi, j] = -1
                else:
                    r = np.int64(to_unit(x) * m)
                    if r >= m:
                        r = m - 1
                    out[bi, j] = _rank_to_item(indices, a, d, r)
            else:
                out[bi, j] = _weighted_draw(indices, a, d, n_items, prob, alias, cdf, x, max_tries)
    return out


@njit(cache=True, nogil=True, parallel=True)
def _topk_kernel(
    scores: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    users: np.ndarray,
    k: int,
    inv_temperature: float,
    key: np.uint64,
    offset: np.int64,
    gumbel: bool,
) -> np.ndarray:
    """Per row: the k non-positive items of largest key = score * inv_temperature (+ Gumbel noise), best first.
    Ties go to the lower item id. -1 fills rows with fewer than k non-positives."""
    b_count, n_items = scores.shape
    out = np.full((b_count, k), -1, np.int32)
    for bi in prange(b_count):
        u = users[bi]
        p = indptr[u]
        end = indptr[u + 1]
        hk = np.empty(k, np.float64)  # min-heap on (key, -item)
        hi = np.empty(k, np.int64)
        size = 0
        base = (offset + np.int64(bi)) * n_items
        for it in range(n_items):
            while p < end and indices[p] < it:
                p += 1
            if p < end and indices[p] == it:
                continue
            val = np.float64(scores[bi, it]) * inv_temperature
            if gumbel:
                val += -np.log(-np.log(to_open_unit(draw_u64(key, base + it))))
            if size < k:
                # sift up
                c = size
                size += 1
                while c > 0:
                    par = (c - 1) >> 1
                    if hk[par] > val or (hk[par] == val and hi[par] < it):
                        hk[c] = hk[par]
                        hi[c] = hi[par]
                        c = par
                    else:
                        break
                hk[c] = val
                hi[c] = it
            elif val > hk[0]:  # equal keys: the earlier (lower) item stays
                c = 0
                while True:
                    left = 2 * c + 1
                    if left >= size:
                        break
                    s = left
                    r = left + 1
                    if r < size and (hk[r] < hk[left] or (hk[r] == hk[left] and hi[r] > hi[left])):
                        s = r
                    if hk[s] < val or (hk[s] == val and hi[s] > it):
                        hk[c] = hk[s]
                        hi[c] = hi[s]
                        c = s
                    else:
                        break
                hk[c] = val
                hi[c] = it
        if size == k:
            order = np.argsort(-hk[:size], kind="mergesort")
            # stable on equal keys: resolve ties by item id
            vals = hk[:size][order]
            items = hi[:size][order]
            s0 = 0
            while s0 < size:
                s1 = s0 + 1
                while s1 < size and vals[s1] == vals[s0]:
                    s1 += 1
                items[s0:s1] = np.sort(items[s0:s1])
                s0 = s1
            for j in range(k):
                out[bi, j] = items[j]
    return out


@njit(cache=True, nogil=True, parallel=True)
def _eval_kernel(
    indptr: np.ndarray, indices: np.ndarray, users: np.ndarray, n_neg: int, n_items: int, key: np.uint64
) -> np.ndarray:
    """n_neg distinct non-positive items per user (sorted), uniform over such sets (Floyd); -1 rows if too few."""
    b_count = users.shape[0]
    out = np.full((b_count, n_neg), -1, np.int32)
    for bi in prange(b_count):
        u = users[bi]
        a = indptr[u]
        d = indptr[u + 1] - a
        m = n_items - d
        if m < n_neg:
            continue
        ranks = np.empty(n_neg, np.int64)
        size = 0
        x = draw_u64(key, np.int64(u))
        for jj in range(m - n_neg, m):
            x = next_u64(x)
            t = np.int64(to_unit(x) * (jj + 1))
            if t > jj:
                t = jj
            found = False
            for q in range(size):
                if ranks[q] == t:
                    found = True
                    break
            ranks[size] = jj if found else t
            size += 1
        ranks.sort()
        # merge walk: ranks ascending map to items ascending
        p = np.int64(0)
        for q in range(n_neg):
            r = ranks[q]
            while p < d and indices[a + p] - p <= r:
                p += 1
            out[bi, q] = r + p
    return out


# ---------------------------------------------------------------------------------------------------- Python API
def _users_array(users: Any, n_users: int) -> np.ndarray:
    arr = np.asarray(users)
    if arr.ndim != 1:
        raise ValueError(f"users must be 1-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return np.zeros(0, np.int64)
        raise TypeError(f"users must be internal integer ids, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_users):
        k = int(np.flatnonzero((arr < 0) | (arr >= n_users))[0])
        raise ValueError(f"users[{k}] = {int(arr[k])} is out of range [0, {n_users})")
    return arr


def _check_count(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _raise_unsamplable(out: np.ndarray, users: np.ndarray, positives: Interactions, what: str) -> None:
    bad = np.flatnonzero((out < 0).any(axis=1))
    if bad.size:
        u = int(users[bad[0]])
        raise ValueError(
            f"user {u} (external id {show(positives.user_ids[u])}, {int(positives.user_degrees()[u])} positives of "
            f"{positives.n_items} items) has {what}; {bad.size} such rows in this batch")


class NegativeSampler:
    """Samples negatives for internal user ids, excluding each user's items in ``positives``.

    Args:
        positives: the interactions whose items are never returned as a user's negatives.
        distribution: ``"uniform"``, ``"popularity"`` (weights ``item_popularity() ** alpha`` or ``item_weights``)
            or ``"mixed"`` (each negative uniform with probability ``uniform_fraction``, else popularity).
        alpha: popularity exponent (word2vec's 0.75 by default).
        item_weights: explicit non-negative item weights instead of popularity ** alpha.
        uniform_fraction: for ``"mixed"``, in [0, 1].
        seed: the default seed of :meth:`sample`.
        max_tries: rejections of positives before an exact draw from the user's remaining mass (popularity).
    """

    def __init__(
        self,
        positives: Interactions,
        *,
        distribution: str = "uniform",
        alpha: float = 0.75,
        item_weights: Any = None,
        uniform_fraction: float = 0.5,
        seed: int = 0,
        max_tries: int = 32,
    ) -> None:
        if not isinstance(positives, Interactions):
            raise TypeError(f"positives must be Interactions, got {type(positives).__name__}")
        if distribution not in ("uniform", "popularity", "mixed"):
            raise ValueError(f"distribution must be 'uniform', 'popularity' or 'mixed', got {distribution!r}")
        if distribution == "mixed" and not 0.0 <= uniform_fraction <= 1.0:
            raise ValueError(f"uniform_fraction must be in [0, 1], got {uniform_fraction!r}")
        self.positives = positives
        self.distribution = distribution
        self.seed = int(seed)
        self.max_tries = _check_count("max_tries", max_tries)
        self.uniform_fraction = {"uniform": 1.0, "popularity": 0.0, "mixed": float(uniform_fraction)}[distribution]
        if distribution == "uniform":
            self.prob = np.zeros(0, np.float64)
            self.alias = np.zeros(0, np.int32)
            self.cdf = np.zeros(1, np.float64)
        else:
            if item_weights is None:
                if not np.isfinite(alpha) or alpha < 0:
                    raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")
                weights = positives.item_popularity().astype(np.float64) ** alpha
                if alpha == 0:
                    weights = (positives.item_popularity() > 0).astype(np.float64)
            else:
                weights = np.asarray(item_weights, dtype=np.float64)
                if weights.shape != (positives.n_items,):
                    raise ValueError(f"item_weights must have shape ({positives.n_items},), got {weights.shape}")
                if not np.all(np.isfinite(weights)) or (weights < 0).any():
                    k = int(np.flatnonzero(~np.isfinite(weights) | (weights < 0))[0])
                    raise ValueError(f"item_weights must be finite and >= 0: item_weights[{k}] = {show(weights[k])}")
            if weights.sum() <= 0:
                raise ValueError("item weights sum to 0: no item can be sampled")
            self.weights = weights
            self.prob, self.alias, self.cdf = _build_alias(weights)

    def _group_shift(self, batch: int) -> int:
        """User-block size (log2) for grouping a batch: blocks whose CSR rows take about 64 KB, once the batch is
        large enough for the counting sort to pay (-1: no grouping)."""
        p = self.positives
        if batch < 4096:
            return -1
        bytes_per_user = 8.0 + 4.0 * p.nnz / max(p.n_users, 1)
        return int(np.clip(np.floor(np.log2(65536.0 / bytes_per_user)), 0, 30))

    def sample(self, users: Any, n_neg: int, *, seed: int | None = None, offset: int = 0,
               group: bool = True) -> np.ndarray:
        """Negatives for each user in ``users`` (internal ids): int32 [len(users), n_neg].

        Sample j of row b uses the random stream of index ``offset + b * n_neg + j``; pass the running count of
        samples as ``offset`` to continue a stream over batches. ``group`` visits the batch grouped by user block
        (a counting sort) for memory locality; the result is the same either way."""
        n_neg = _check_count("n_neg", n_neg)
        users = _users_array(users, self.positives.n_users)
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        key = seed_key(self.seed if seed is None else seed)
        p = self.positives
        with _threads_for(users.shape[0] * n_neg):
            out = _sample_kernel(p.indptr, p.indices, users, n_neg, p.n_items, key, np.int64(offset),
                                 self.uniform_fraction, self.prob, self.alias, self.cdf, self.max_tries,
                                 self._group_shift(users.shape[0]) if group else -1)
        _raise_unsamplable(out, users, p, "no item left to sample as a negative")
        return out


def uniform_negatives(positives: Interactions, users: Any, n_neg: int, *, seed: int = 0, offset: int = 0
                      ) -> np.ndarray:
    """``n_neg`` uniform negatives per user, never one of the user's positives (int32 [len(users), n_neg])."""
    return NegativeSampler(positives, seed=seed).sample(users, n_neg, offset=offset)


def popularity_negatives(positives: Interactions, users: Any, n_neg: int, *, alpha: float = 0.75, seed: int = 0,
                         offset: int = 0) -> np.ndarray:
    """``n_neg`` negatives per user drawn with probability proportional to popularity ** alpha among the items the
    user has not interacted with (int32 [len(users), n_neg]). Build a :class:`NegativeSampler` once to reuse the
    alias table across batches."""
    return NegativeSampler(positives, distribution="popularity", alpha=alpha, seed=seed).sample(
        users, n_neg, offset=offset)


def hard_negatives(
    scores: Any,
    positives: Interactions,
    users: Any,
    k: int,
    *,
    temperature: float | None = None,
    seed: int = 0,
    offset: int = 0,
) -> np.ndarray:
    """Hard negatives from model scores [len(users), n_items] (numpy or torch, float32/float64).

    With ``temperature=None``: the k highest-scored items that are not the user's positives (ties: lower item id).
    Otherwise k items sampled without replacement with probability softmax(scores / temperature) over the
    non-positives (Gumbel top-k; row b's noise uses the stream of ``offset + b``). Returns int32 [len(users), k],
    best first."""
    k = _check_count("k", k)
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores)
    if scores.dtype not in (np.float32, np.float64):
        raise TypeError(f"scores must be float32 or float64, got dtype {scores.dtype}")
    users = _users_array(users, positives.n_users)
    if scores.ndim != 2 or scores.shape != (users.shape[0], positives.n_items):
        raise ValueError(f"scores must have shape (len(users), n_items) = ({users.shape[0]}, {positives.n_items}), "
                         f"got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        bad = np.argwhere(~np.isfinite(scores))[0]
        raise ValueError(f"scores must be finite: scores[{bad[0]}, {bad[1]}] = {show(scores[bad[0], bad[1]])}")
    if temperature is not None and (not np.isfinite(temperature) or temperature <= 0):
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    inv_t = 1.0 if temperature is None else 1.0 / float(temperature)
    with _threads_for(scores.size):
        out = _topk_kernel(np.ascontiguousarray(scores), positives.indptr, positives.indices, users, k, inv_t,
                           seed_key(seed), np.int64(offset), temperature is not None)
    _raise_unsamplable(out, users, positives, f"fewer than k={k} non-positive items")
    return out


def union(parts: Interactions | Sequence[Interactions]) -> Interactions:
    """The union of the entries of interactions that share one id space (values 1, no timestamps)."""
    if isinstance(parts, Interactions):
        return parts
    parts = list(parts)
    if not parts:
        raise ValueError("union: no interactions given")
    first = parts[0]
    for k, p in enumerate(parts[1:], 1):
        if p.shape != first.shape:
            raise ValueError(f"union: parts[{k}] has shape {p.shape}, parts[0] has {first.shape}; "
                             "they must share one id space")
    rows = np.concatenate([p.rowids().astype(np.int64) for p in parts])
    cols = np.concatenate([p.indices for p in parts]).astype(np.int64)
    return Interactions._build(rows, cols, None, None, first.user_ids, first.item_ids, "max")


def evaluation_negatives(
    exclude: Interactions | Sequence[Interactions],
    n_neg: int = 100,
    *,
    users: Any = None,
    seed: int = 0,
) -> np.ndarray:
    """The fixed negatives of the sampled-metrics protocol: for each user, ``n_neg`` distinct items none of which
    the user interacted with in any of ``exclude`` (e.g. [train, valid, test]), uniform over such sets, sorted.

    Returns int32 [len(users), n_neg] (all users by default). A user's negatives depend only on (seed, user id),
    not on which other users are asked for."""
    n_neg = _check_count("n_neg", n_neg)
    pos = union(exclude)
    users = np.arange(pos.n_users, dtype=np.int64) if users is None else _users_array(users, pos.n_users)
    out = _eval_kernel(pos.indptr, pos.indices, users, n_neg, pos.n_items, seed_key(seed))
    _raise_unsamplable(out, users, pos, f"fewer than n_neg={n_neg} items it has not interacted with")
    return out
