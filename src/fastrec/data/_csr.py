"""numba kernels that build and check CSR interaction storage.

Construction is a stable counting sort by row (one sequential scatter pass), then a parallel per-row stable sort of the
column ids that carries each entry's input position, then (only when duplicates exist) a per-row merge. Nothing here
allocates per row except the argsort of long rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Duplicate policies, as passed to _dedup_rows.
POLICY_SUM, POLICY_FIRST, POLICY_LAST, POLICY_MAX = 0, 1, 2, 3
_INSERTION_SORT_MAX = 24


@njit(cache=True, nogil=True)
def counting_sort_rows(rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable counting sort of entries by row: returns (indptr int64[n_rows+1], order int64[n]) where order lists the
    input positions row by row, in input order within a row."""
    n = rows.shape[0]
    indptr = np.zeros(n_rows + 1, np.int64)
    for k in range(n):
        indptr[rows[k] + 1] += 1
    for r in range(n_rows):
        indptr[r + 1] += indptr[r]
    pos = indptr[:-1].copy()
    order = np.empty(n, np.int64)
    for k in range(n):
        r = rows[k]
        order[pos[r]] = k
        pos[r] += 1
    return indptr, order


@njit(cache=True, nogil=True, parallel=True)
def sort_within_rows(indptr: np.ndarray, order: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, int]:
    """Sorts each row's entries by column, stably (input order among equal columns), permuting ``order`` in place.

    Returns (indices int32 in CSR order, number of duplicate (row, column) entries)."""
    n_rows = indptr.shape[0] - 1
    indices = np.empty(order.shape[0], np.int32)
    dups = np.zeros(n_rows, np.int64)
    for r in prange(n_rows):
        a, b = indptr[r], indptr[r + 1]
        is_sorted = True
        for k in range(a, b):
            indices[k] = cols[order[k]]
            if k > a and indices[k] < indices[k - 1]:
                is_sorted = False
        if not is_sorted:
            m = b - a
            if m <= _INSERTION_SORT_MAX:
                for k in range(a + 1, b):
                    key, o = indices[k], order[k]
                    j = k - 1
                    while j >= a and indices[j] > key:
                        indices[j + 1] = indices[j]
                        order[j + 1] = order[j]
                        j -= 1
                    indices[j + 1] = key
                    order[j + 1] = o
            else:
                perm = np.argsort(indices[a:b], kind="mergesort")
                keys = indices[a:b][perm]
                ords = order[a:b][perm]
                indices[a:b] = keys
                order[a:b] = ords
        d = 0
        for k in range(a + 1, b):
            if indices[k] == indices[k - 1]:
                d += 1
        dups[r] = d
    return indices, dups.sum()


@njit(cache=True, nogil=True)
def first_duplicate(indptr: np.ndarray, indices: np.ndarray) -> tuple[int, int]:
    """(row, column) of the first duplicate entry in a row-sorted CSR, or (-1, -1)."""
    for r in range(indptr.shape[0] - 1):
        for k in range(indptr[r] + 1, indptr[r + 1]):
            if indices[k] == indices[k - 1]:
                return r, indices[k]
    return -1, -1


@njit(cache=True, nogil=True, parallel=True)
def dedup_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    order: np.ndarray,
    values: np.ndarray,
    timestamps: np.ndarray,
    policy: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merges runs of equal columns in a row-sorted CSR whose entries are in input order within each run.

    ``values`` and ``timestamps`` are indexed by input position (``order``); ``timestamps`` may be empty (absent).
    sum: values added, timestamp the latest; max: the largest value (the later one on ties), timestamp the latest;
    first / last: the whole entry that comes first / last by timestamp when timestamps exist (input order breaks
    ties), else by input order. Returns (indptr, indices, values, timestamps) of the merged CSR.
    """
    n_rows = indptr.shape[0] - 1
    has_ts = timestamps.shape[0] > 0
    counts = np.zeros(n_rows + 1, np.int64)
    for r in prange(n_rows):
        c = 0
        for k in range(indptr[r], indptr[r + 1]):
            if k == indptr[r] or indices[k] != indices[k - 1]:
                c += 1
        counts[r + 1] = c
    new_indptr = np.cumsum(counts)
    nnz = new_indptr[-1]
    out_idx = np.empty(nnz, np.int32)
    out_val = np.empty(nnz, np.float32)
    out_ts = np.empty(nnz if has_ts else 0, np.int64)
    for r in prange(n_rows):
        k = indptr[r]
        end = indptr[r + 1]
        w = new_indptr[r]
        while k < end:
            g = k + 1
            while g < end and indices[g] == indices[k]:
                g += 1
            best = order[k]
            acc = values[best]
            t = timestamps[best] if has_ts else 0
            for j in range(k + 1, g):
                o = order[j]
                if policy == POLICY_SUM:
                    acc += values[o]
                    if has_ts and timestamps[o] > t:
                        t = timestamps[o]
                elif policy == POLICY_MAX:
                    if values[o] >= acc:
                        acc = values[o]
                    if has_ts and timestamps[o] > t:
                        t = timestamps[o]
                elif policy == POLICY_LAST:
                    if not has_ts or timestamps[o] >= t:
                        best = o
                        acc = values[o]
                        if has_ts:
                            t = timestamps[o]
                else:  # POLICY_FIRST
                    if has_ts and timestamps[o] < t:
                        best = o
                        acc = values[o]
                        t = timestamps[o]
            out_idx[w] = indices[k]
            out_val[w] = acc
            if has_ts:
                out_ts[w] = t
            w += 1
            k = g
    return new_indptr, out_idx, out_val, out_ts


@njit(cache=True, nogil=True, parallel=True)
def gather_f32(src: np.ndarray, order: np.ndarray) -> np.ndarray:
    """src[order] as float32, in parallel."""
    out = np.empty(order.shape[0], np.float32)
    for k in prange(order.shape[0]):
        out[k] = src[order[k]]
    return out


@njit(cache=True, nogil=True, parallel=True)
def gather_i64(src: np.ndarray, order: np.ndarray) -> np.ndarray:
    """src[order] as int64, in parallel."""
    out = np.empty(order.shape[0], np.int64)
    for k in prange(order.shape[0]):
        out[k] = src[order[k]]
    return out


@njit(cache=True, nogil=True)
def check_csr(indptr: np.ndarray, indices: np.ndarray, n_cols: int) -> int:
    """-1 if every row is strictly increasing with columns in [0, n_cols), else the first offending row."""
    for r in range(indptr.shape[0] - 1):
        a, b = indptr[r], indptr[r + 1]
        if b < a:
            return r
        for k in range(a, b):
            c = indices[k]
            if c < 0 or c >= n_cols or (k > a and c <= indices[k - 1]):
                return r
    return -1
