"""numba kernels that build and check CSR interaction storage.

Construction is a two-pass radix sort (row blocks, then rows within a cache-sized block, each row sorted by column),
then (only when duplicates exist) a per-row merge. Values and timestamps travel with the entries, so no pass gathers
through a random permutation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Duplicate policies, as passed to _dedup_rows.
POLICY_SUM, POLICY_FIRST, POLICY_LAST, POLICY_MAX = 0, 1, 2, 3
_INSERTION_SORT_MAX = 24


@njit(cache=True, nogil=True, parallel=True)
def build_csr(
    rows: np.ndarray,
    cols: np.ndarray,
    values: np.ndarray,
    timestamps: np.ndarray,
    n_rows: int,
    shift: int,
    n_chunks: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.int64]:
    """CSR from (row, col[, value][, timestamp]) entries: rows in order, columns sorted within a row, entries with
    equal (row, col) kept adjacent in input order (a stable sort by (row, col)).

    Two radix passes keep the memory traffic sequential: pass 1 scatters the entries into row blocks of
    2**shift rows (few output streams, per-chunk offsets keep input order, ``n_chunks`` threads); pass 2, one block
    per thread, places each block's entries by row and sorts each row by column inside the cache. ``values`` /
    ``timestamps`` may be empty (absent). The result does not depend on ``n_chunks`` or the thread count.
    Returns (indptr int64, indices int32, values float32, timestamps int64, number of duplicate entries)."""
    n = rows.shape[0]
    has_v = values.shape[0] > 0
    has_t = timestamps.shape[0] > 0
    n_blocks = (n_rows >> shift) + 1
    # pass 1: block histograms per chunk, then a stable scatter into block order
    counts = np.zeros((n_chunks, n_blocks), np.int64)
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for k in range(c * step, min(n, (c + 1) * step)):
            counts[c, rows[k] >> shift] += 1
    block_start = np.zeros(n_blocks + 1, np.int64)
    for blk in range(n_blocks):
        t = block_start[blk]
        for c in range(n_chunks):
            v = counts[c, blk]
            counts[c, blk] = t
            t += v
        block_start[blk + 1] = t
    t_rows = np.empty(n, np.int32)
    t_cols = np.empty(n, np.int32)
    t_vals = np.empty(n if has_v else 0, np.float32)
    t_ts = np.empty(n if has_t else 0, np.int64)
    for c in prange(n_chunks):
        for k in range(c * step, min(n, (c + 1) * step)):
            blk = rows[k] >> shift
            p = counts[c, blk]
            counts[c, blk] = p + 1
            t_rows[p] = rows[k]
            t_cols[p] = cols[k]
            if has_v:
                t_vals[p] = values[k]
            if has_t:
                t_ts[p] = timestamps[k]
    # pass 2: per block, a counting sort by row, then each row sorted by (column, input order)
    indptr = np.zeros(n_rows + 1, np.int64)
    indices = np.empty(n, np.int32)
    out_v = np.empty(n if has_v else 0, np.float32)
    out_t = np.empty(n if has_t else 0, np.int64)
    dups = np.zeros(n_blocks, np.int64)
    for blk in prange(n_blocks):
        lo = block_start[blk]
        hi = block_start[blk + 1]
        r0 = blk << shift
        r1 = min(n_rows, r0 + (1 << shift))
        if r1 <= r0:
            continue
        pos = np.zeros(r1 - r0 + 1, np.int64)
        for k in range(lo, hi):
            pos[t_rows[k] - r0 + 1] += 1
        pos[0] = lo
        for r in range(r1 - r0):
            pos[r + 1] += pos[r]
            indptr[r0 + r + 1] = pos[r + 1]
        fill = pos[:-1].copy()
        for k in range(lo, hi):
            r = t_rows[k] - r0
            p = fill[r]
            fill[r] = p + 1
            indices[p] = t_cols[k]
            if has_v:
                out_v[p] = t_vals[k]
            if has_t:
                out_t[p] = t_ts[k]
        longest = 0
        for r in range(r1 - r0):
            longest = max(longest, pos[r + 1] - pos[r])
        keys = np.empty(longest, np.int64)
        sv = np.empty(longest if has_v else 0, np.float32)
        st = np.empty(longest if has_t else 0, np.int64)
        d = 0
        for r in range(r1 - r0):
            a = pos[r]
            b = pos[r + 1]
            is_sorted = True
            for k in range(a + 1, b):
                if indices[k] < indices[k - 1]:
                    is_sorted = False
                    break
            if not is_sorted:
                m = b - a
                if m <= _INSERTION_SORT_MAX:
                    for k in range(a + 1, b):
                        key = indices[k]
                        vv = out_v[k] if has_v else 0.0
                        tt = out_t[k] if has_t else 0
                        j = k - 1
                        while j >= a and indices[j] > key:
                            indices[j + 1] = indices[j]
                            if has_v:
                                out_v[j + 1] = out_v[j]
                            if has_t:
                                out_t[j + 1] = out_t[j]
                            j -= 1
                        indices[j + 1] = key
                        if has_v:
                            out_v[j + 1] = vv
                        if has_t:
                            out_t[j + 1] = tt
                else:
                    for j in range(m):  # (column, position) keys are distinct: any sort is stable
                        keys[j] = (np.int64(indices[a + j]) << 32) | j
                        if has_v:
                            sv[j] = out_v[a + j]
                        if has_t:
                            st[j] = out_t[a + j]
                    ks = np.sort(keys[:m])
                    for j in range(m):
                        src = ks[j] & 0xFFFFFFFF
                        indices[a + j] = np.int32(ks[j] >> 32)
                        if has_v:
                            out_v[a + j] = sv[src]
                        if has_t:
                            out_t[a + j] = st[src]
            for k in range(a + 1, b):
                if indices[k] == indices[k - 1]:
                    d += 1
        dups[blk] = d
    return indptr, indices, out_v, out_t, dups.sum()


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
    values: np.ndarray,
    timestamps: np.ndarray,
    policy: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merges runs of equal columns in a row-sorted CSR whose runs are in input order.

    ``values`` empty means all ones; ``timestamps`` may be empty (absent). sum: values added, timestamp the latest;
    max: the largest value, timestamp the latest; first / last: the whole entry that comes first / last by
    timestamp when timestamps exist (input order breaks ties), else by input order.
    Returns (indptr, indices, values float32, timestamps) of the merged CSR."""
    n_rows = indptr.shape[0] - 1
    has_v = values.shape[0] > 0
    has_t = timestamps.shape[0] > 0
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
    out_ts = np.empty(nnz if has_t else 0, np.int64)
    for r in prange(n_rows):
        k = indptr[r]
        end = indptr[r + 1]
        w = new_indptr[r]
        while k < end:
            g = k + 1
            while g < end and indices[g] == indices[k]:
                g += 1
            acc = values[k] if has_v else np.float32(1.0)
            t = timestamps[k] if has_t else 0
            for o in range(k + 1, g):
                vo = values[o] if has_v else np.float32(1.0)
                if policy == POLICY_SUM:
                    acc += vo
                    if has_t and timestamps[o] > t:
                        t = timestamps[o]
                elif policy == POLICY_MAX:
                    if vo > acc:
                        acc = vo
                    if has_t and timestamps[o] > t:
                        t = timestamps[o]
                elif policy == POLICY_LAST:
                    if not has_t or timestamps[o] >= t:
                        acc = vo
                        if has_t:
                            t = timestamps[o]
                else:  # POLICY_FIRST
                    if has_t and timestamps[o] < t:
                        acc = vo
                        t = timestamps[o]
            out_idx[w] = indices[k]
            out_val[w] = acc
            if has_t:
                out_ts[w] = t
            w += 1
            k = g
    return new_indptr, out_idx, out_val, out_ts


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
