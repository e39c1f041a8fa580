"""Constrained EASE: the weights of each target item re-solved on a given support.

For a target item j and a set S_j of source items (j not in S_j), the column b = B[S_j, j] that minimizes
||X_j - X_S b||^2 + l2 ||b||^2, with every other weight of the column held at zero, is

    b = (G[S, S] + l2 I)^-1 G[S, j],   G = X^T X,

EASE's own objective restricted to the support. Truncating the exact B to its largest weights instead drops the
rest of the column without re-balancing what is kept, which is what loses accuracy when the support is small. Each
column is an independent |S| x |S| system: the cost is n * (|S|^2 Gram look-ups + |S|^3 / 3 flops), linear in n.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from numba import njit, prange

__all__ = ["refit_columns"]

# Columns solved per batched Cholesky: bounds the [batch, m, m] float64 buffer to about 64 MB.
_BATCH_BYTES = 64 * 2**20


@njit(cache=True, nogil=True, parallel=True)
def _gather_systems(g_ptr, g_idx, g_val, s_ptr, s_idx, cols, a, b):  # pragma: no cover - numba
    """For each column j = cols[t] with sorted support S (rows s_idx[s_ptr[j]:s_ptr[j+1]], k of them):
    a[t, :k, :k] = G[S, S], b[t, :k] = G[S, j]; the padding a[t, k:, k:] = I, b[t, k:] = 0 solves to zero."""
    m = a.shape[1]
    for t in prange(cols.shape[0]):
        j = cols[t]
        lo = s_ptr[j]
        k = s_ptr[j + 1] - lo
        s = s_idx[lo:lo + k]
        for p in range(m):
            b[t, p] = 0.0
            for c in range(m):
                a[t, p, c] = 0.0
        for p in range(k, m):
            a[t, p, p] = 1.0
        for p in range(k):
            r0 = g_ptr[s[p]]
            row = g_idx[r0:g_ptr[s[p] + 1]]
            pos = np.searchsorted(row, s)
            for c in range(k):
                if pos[c] < row.shape[0] and row[pos[c]] == s[c]:
                    a[t, p, c] = g_val[r0 + pos[c]]
            q = np.searchsorted(row, j)
            if q < row.shape[0] and row[q] == j:
                b[t, p] = g_val[r0 + q]


def refit_columns(gram: sp.csr_matrix, support: sp.csc_matrix, l2: float) -> sp.csc_matrix:
    """Re-solves every column of a sparse weight matrix on its support: returns a CSC matrix with the pattern of
    ``support`` (values ignored) and column j's values ``(G[S, S] + l2 I)^-1 G[S, j]`` for its rows S.

    Args:
        gram: G = X^T X (or a positive semi-definite approximation of it), ``[n, n]`` CSR, symmetric; absent
            entries count as zero.
        support: ``[n, n]``; column j's stored rows are the source items allowed to score item j (j itself must
            not be among them: EASE's weights have a zero diagonal).
        l2: the L2 penalty (> 0), the same as the model's.

    A system that is not positive definite (possible only when ``gram`` is not positive semi-definite) raises.
    """
    n = gram.shape[0]
    if gram.shape != (n, n) or support.shape != (n, n):
        raise ValueError(f"gram and support must both be [n, n], got {gram.shape} and {support.shape}")
    if not (l2 > 0 and np.isfinite(l2)):
        raise ValueError(f"l2 must be finite and > 0, got {l2}")
    g = sp.csr_matrix(gram, dtype=np.float64)
    g.sort_indices()
    s = sp.csc_matrix(support)
    s.sort_indices()
    rows = np.repeat(np.arange(n), np.diff(s.indptr))
    if (s.indices == rows).any():
        j = int(rows[s.indices == rows][0])
        raise ValueError(f"support: column {j} contains its own item (the diagonal of B must stay zero)")
    sizes = np.diff(s.indptr)
    values = np.zeros(s.nnz, np.float64)
    g_ptr = g.indptr.astype(np.int64)
    s_ptr, s_idx = s.indptr.astype(np.int64), s.indices.astype(np.int64)
    # largest supports first: each batch pads its systems to the size of its first column
    order = np.argsort(-sizes, kind="stable")[: np.count_nonzero(sizes)]
    start = 0
    while start < order.size:
        m = int(sizes[order[start]])
        cols = order[start:start + max(1, _BATCH_BYTES // (8 * m * m))]
        start += cols.size
        a = np.empty((cols.size, m, m), np.float64)
        b = np.empty((cols.size, m), np.float64)
        _gather_systems(g_ptr, g.indices, g.data, s_ptr, s_idx, cols, a, b)
        at = torch.from_numpy(a)
        at.diagonal(dim1=1, dim2=2).add_(l2)
        chol, info = torch.linalg.cholesky_ex(at)
        if bool((info != 0).any()):
            bad = int(cols[int(torch.nonzero(info)[0, 0])])
            raise ValueError(f"gram: the system of column {bad} is not positive definite (gram must be positive "
                             "semi-definite)")
        x = torch.cholesky_solve(torch.from_numpy(b).unsqueeze(-1), chol).squeeze(-1).numpy()
        # column j's k values sit at s_ptr[j]:s_ptr[j] + k in the output and at x[t, :k] in the batch
        k = sizes[cols]
        dest = np.repeat(s_ptr[cols] - np.cumsum(k) + k, k) + np.arange(k.sum())
        values[dest] = x[np.arange(m) < k[:, None]]
    return sp.csc_matrix((values, s.indices, s.indptr), shape=(n, n))
