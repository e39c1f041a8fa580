"""Shared pieces of the data-layer benchmarks: the synthetic dataset, the obvious numpy / Python baselines, and a
random-access probe. Not collected by pytest (no test_ prefix).

Scale: ``FASTREC_BENCH_DATA`` = "users,items,interactions" (default "1000000,100000,50000000", the issue's size);
e.g. ``FASTREC_BENCH_DATA=100000,20000,5000000`` for a quick run.
"""

from __future__ import annotations

import functools
import os
import random
import time

import numpy as np
from numba import njit, prange

from fastrec.data import Interactions
from fastrec.data.synthetic import synthetic_arrays


FULL_SCALE = (1_000_000, 100_000, 50_000_000)


def scale() -> tuple[int, int, int]:
    spec = os.environ.get("FASTREC_BENCH_DATA", ",".join(map(str, FULL_SCALE)))
    n_users, n_items, n = (int(v) for v in spec.split(","))
    return n_users, n_items, n


@functools.lru_cache(maxsize=1)
def raw_data() -> tuple[np.ndarray, np.ndarray]:
    """Synthetic (users, items) entries in random order, Zipf item popularity, log-normal user activity."""
    n_users, n_items, n = scale()
    users, items, _ = synthetic_arrays(n_users, n_items, n, seed=0)
    return users, items


@functools.lru_cache(maxsize=1)
def dataset() -> Interactions:
    n_users, n_items, _ = scale()
    users, items = raw_data()
    return Interactions.from_arrays(users, items, duplicates="first", user_ids="identity", item_ids="identity",
                                    n_users=n_users, n_items=n_items)


@functools.lru_cache(maxsize=1)
def global_keys() -> np.ndarray:
    """Sorted user * n_items + item keys of all entries (the numpy baseline's index; CSR order is key order)."""
    x = dataset()
    return x.rowids().astype(np.int64) * x.n_items + x.indices


def positives_sample(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """n positives drawn uniformly from the entries: (users int64, entry positions)."""
    x = dataset()
    pos = np.random.default_rng(seed).integers(0, x.nnz, n)
    return x.rowids()[pos].astype(np.int64), pos


# ------------------------------------------------------------------------------------------ baselines
def numpy_csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The obvious numpy CSR build: lexsort by (user, item), drop repeated pairs, bincount the row pointers."""
    order = np.lexsort((items, users))
    u, i = users[order], items[order]
    keep = np.ones(u.size, bool)
    keep[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    u, i = u[keep], i[keep]
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(u, minlength=n_users), out=indptr[1:])
    return indptr, i.astype(np.int32)


def scipy_csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int):
    """scipy's COO -> CSR with duplicates summed and indices sorted (canonical CSR)."""
    import scipy.sparse as sp

    m = sp.coo_matrix((np.ones(users.size, np.float32), (users, items)), shape=(n_users, n_items)).tocsr()
    m.sum_duplicates()
    m.sort_indices()
    return m


def numpy_uniform(keys: np.ndarray, users: np.ndarray, n_items: int, n_neg: int, rng: np.random.Generator
                  ) -> np.ndarray:
    """Vectorized rejection: draw, look the (user, item) key up with searchsorted, redraw the hits."""
    cand = rng.integers(0, n_items, (users.size, n_neg))
    ukey = users[:, None] * n_items
    todo = np.arange(cand.size)
    while todo.size:
        k = (ukey.ravel()[todo // n_neg] if n_neg > 1 else ukey.ravel()[todo]) + cand.ravel()[todo]
        p = np.minimum(np.searchsorted(keys, k), keys.size - 1)
        hit = keys[p] == k
        todo = todo[hit]
        cand.ravel()[todo] = rng.integers(0, n_items, todo.size)
    return cand


def numpy_popularity(keys: np.ndarray, cdf: np.ndarray, users: np.ndarray, n_items: int, n_neg: int,
                     rng: np.random.Generator) -> np.ndarray:
    """numpy's equivalent for popularity ** alpha: inverse-CDF draws (searchsorted on the prefix sums), the same
    searchsorted rejection of positives."""
    total = cdf[-1]

    def draw(size: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, rng.random(size) * total, side="right") - 1, n_items - 1)

    cand = draw(users.size * n_neg).reshape(users.size, n_neg)
    ukey = np.repeat(users * n_items, n_neg)
    todo = np.arange(cand.size)
    while todo.size:
        k = ukey[todo] + cand.ravel()[todo]
        p = np.minimum(np.searchsorted(keys, k), keys.size - 1)
        todo = todo[keys[p] == k]
        cand.ravel()[todo] = draw(todo.size)
    return cand


def python_uniform(x: Interactions, users: np.ndarray, n_neg: int, seed: int = 0) -> list[list[int]]:
    """A per-row Python loop: the row's items in a set, random.randrange until an item is not in it."""
    rnd = random.Random(seed)
    indptr, indices, n_items = x.indptr, x.indices, x.n_items
    out = []
    for u in users.tolist():
        seen = set(indices[indptr[u]:indptr[u + 1]].tolist())
        row = []
        while len(row) < n_neg:
            i = rnd.randrange(n_items)
            if i not in seen:
                row.append(i)
        out.append(row)
    return out


# ------------------------------------------------------------------------------------------ random access
@njit(cache=True, nogil=True, parallel=True)
def _gather_sum(table: np.ndarray, idx: np.ndarray) -> np.int64:
    s = np.int64(0)
    for k in prange(idx.shape[0]):
        s += table[idx[k]]
    return s


def random_reads_per_second(table_mb: int = 512, n: int = 20_000_000) -> float:
    """Independent random 4-byte reads per second from a table far larger than the caches (numba, current
    thread count): the rate a sampler whose every draw misses the cache once could reach."""
    table = np.ones(table_mb * 2**20 // 4, np.int32)
    idx = np.random.default_rng(0).integers(0, table.size, n)
    _gather_sum(table, idx[:1000])
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        _gather_sum(table, idx)
        best = min(best, time.perf_counter() - t)
    return n / best
