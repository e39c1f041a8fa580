"""Sparse approximate EASE for catalogs where a dense n x n matrix is impossible, after SANSA (Spisak, Bartyzal and
Tóth, "Scalable Approximate NonSymmetric Autoencoder for Collaborative Filtering", RecSys 2023), with a final exact
re-fit of the kept weights.

1. G = X^T X by the native sparse Gram kernel: exact (``gram_top_m=0``), or each row pruned to its ``gram_top_m``
   largest co-occurrences, made symmetric (the union of the kept entries), with the dropped co-occurrences added
   to the diagonal (which keeps the pruned matrix positive semi-definite: without it the factorization breaks
   down). The factorization takes G + l2 I.
2. A fill-reducing ordering: items by increasing degree in G (a static minimum-degree order: rare items first,
   so that the fill of the factorization collects in the columns of the popular items, eliminated last).
3. Incomplete LDL^T of the reordered G + l2 I (native, ``density`` entries per column of L at most).
4. A sparse approximate inverse W = D^-1/2 L^-1 (native, parallel over columns; ``density`` entries per column,
   ``4 * density`` per row), so that P = (G + l2 I)^-1 ~ W^T W.
5. An approximate B = I - P diag(1/diag(P)), never dense: column j of P is row j of W^T W, which the sparse Gram
   kernel computes from W (its rows are the "users") keeping the ``2 * top_m`` largest |p_ij| per item.
6. The pattern: each item (row of B) keeps its ``top_m`` largest approximate weights, each target column at most
   ``32 * top_m`` of them; then every column is re-solved exactly on its pattern with G
   (:func:`fastrec.linear.refit.refit_columns`, as in :meth:`fastrec.linear.EASE.prune`). The approximate inverse
   only has to find which weights matter; their values come from EASE's own objective.

On Gowalla the approximation's loss came mostly from the pruned Gram matrix (its diagonal compensation acts as an
extra, uneven regularization) and from using the approximate values of B; the exact Gram matrix and the re-fit
recover most of it (README, "Closed-form models"). The cost of every step is bounded by nnz(G), the density
budgets and n * top_m * (32 top_m)^2 for the re-fit, not by n^2.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch

from fastrec import ops
from fastrec.linear._base import csr_tensors, top_per_item
from fastrec.linear.refit import refit_columns

__all__ = ["sparse_ease"]


def _csr(parts, n: int) -> sp.csr_matrix:
    indptr, indices, values = parts
    return sp.csr_matrix((values.numpy(), indices.numpy(), indptr.numpy()), shape=(n, n))


def _csr_tensors_f64(m: sp.csr_matrix):
    """(indptr, indices, float64 values) of a CSR matrix with real-valued entries."""
    indptr, indices, _ = csr_tensors(m)
    return indptr, indices, torch.from_numpy(np.ascontiguousarray(m.data, dtype=np.float64))


def sparse_ease(x: sp.csr_matrix, l2: float, *, top_m: int = 128, gram_top_m: int = 0, density: float = 50.0,
                drop_tol: float = 1e-4, dtype: torch.dtype = torch.float32,
                progress: bool = False) -> tuple[sp.csr_matrix, dict[str, float]]:
    """Sparse approximate EASE weights B (scipy CSR [n, n], zero diagonal, at most ``top_m`` entries per row) and
    the seconds of each phase. See the module docstring for the steps."""
    n = x.shape[1]
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        seconds[name] = now - t
        t = now
        if progress:
            print(f"sparse EASE: {name} {seconds[name]:.1f} s", flush=True)

    indptr, indices, values = csr_tensors(x)
    g = _csr(ops.gram_sparse(indptr, indices, values, n, top_m=gram_top_m, dtype=torch.float64), n)
    if gram_top_m:
        g = g.maximum(g.T).tocsr()  # equal values where both rows kept the pair: the union of the kept entries
        # Pruning leaves an indefinite matrix in general. Each dropped pair e = g_ij >= 0 goes onto both diagonals
        # instead ([[e, -e], [-e, e]] is positive semi-definite), so the pruned matrix stays >= X^T X. The row sums
        # of X^T X are X^T (X 1); the dropped part of row i is its row sum minus the kept entries' sum.
        full_rows = np.asarray(x.T @ (x @ np.ones(n)), dtype=np.float64).ravel()
        dropped = np.maximum(full_rows - np.asarray(g.sum(axis=1)).ravel(), 0.0)
        g = (g + sp.diags(dropped, format="csr")).tocsr()
    lap("gram")
    perm = np.argsort(np.diff(g.indptr), kind="stable")
    lower = sp.tril((g + sp.diags(np.full(n, l2), format="csr"))[perm][:, perm]).tocsc()
    lower.sort_indices()
    lap("ordering")
    cap = max(1, int(round(density)))
    lp, li, lv, d = ops.incomplete_ldl(torch.from_numpy(lower.indptr.astype(np.int64)),
                                       torch.from_numpy(lower.indices.astype(np.int32)),
                                       torch.from_numpy(lower.data.astype(np.float64)), cap, drop_tol)
    del lower
    lap("factorization")
    wp, wi, wv = ops.unit_lower_inverse(lp, li, lv, d, cap, 4 * cap, drop_tol)
    del lp, li, lv
    lap("inverse")
    # columns of W back to item ids: W^T W = P in the original order
    w = sp.csr_matrix((wv.numpy(), perm[wi.numpy()].astype(np.int32), wp.numpy()), shape=(n, n))
    w.sort_indices()
    pp, pi, pv = ops.gram_sparse(*_csr_tensors_f64(w), n, top_m=2 * top_m, dtype=torch.float64)
    del w
    p = _csr((pp, pi, pv), n)
    diag = p.diagonal()
    # column j of B = -(row j of P) / p_jj, diagonal dropped: built as B^T's rows, then transposed
    bt = sp.csr_matrix((-p.data / np.repeat(diag, np.diff(p.indptr)), p.indices, p.indptr), shape=(n, n))
    del p
    bt.setdiag(0.0)
    bt.eliminate_zeros()
    support = top_per_item(top_per_item(bt.T.tocsr(), top_m, "source", signed=True), 32 * top_m, "target")
    del bt
    lap("pattern")
    b = refit_columns(g, support.tocsc(), l2).tocsr()
    b.eliminate_zeros()
    b = b.astype(np.float32 if dtype == torch.float32 else np.float64)
    b.sort_indices()
    lap("refit")
    return b, seconds
