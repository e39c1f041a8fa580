"""Sparse EASE for catalogs where a dense n x n matrix is impossible: choose which weights of B to keep (at most
``top_m`` per item), then solve EASE's objective exactly on that pattern.

1. G = X^T X by the native sparse Gram kernel: exact (``gram_top_m=0``), or each row pruned to its ``gram_top_m``
   largest co-occurrences, made symmetric (the union of the kept entries), with the dropped co-occurrences added
   to the diagonal (which keeps the pruned matrix positive semi-definite, as the later steps need).
2. The pattern, from one of two rankings of the candidate weights b_ij:

   - ``"cooccurrence"`` (default): each item's nearest items by cosine similarity of the training columns
     (:func:`cooccurrence_support`);
   - ``"inverse"``: the approximate weights of SANSA (Spisak, Bartyzal and Tóth, "Scalable Approximate
     NonSymmetric Autoencoder for Collaborative Filtering", RecSys 2023): a static minimum-degree ordering (items
     by increasing degree, so that the fill collects in the columns of the popular items, eliminated last), a
     native incomplete LDL^T of G + l2 I (``density`` entries per column of L), a native sparse approximate
     inverse W = D^-1/2 L^-1 (``density`` per column, ``4 * density`` per row) so that P ~ W^T W, and
     B ~ I - P diag(1/diag(P)) from the sparse Gram kernel applied to W, ``2 * top_m`` entries per item.

   Each item (row of B) keeps its ``top_m`` best-ranked candidates, each target column at most ``32 * top_m``.
3. Every column is re-solved exactly on its pattern, b = (G[S, S] + l2 I)^-1 G[S, j]
   (:func:`fastrec.linear.refit.refit_columns`, as in :meth:`fastrec.linear.EASE.prune`).

On Gowalla the values of the approximate inverse and the pruned Gram matrix (whose diagonal compensation acts as an
extra, uneven regularization) lost most; with the re-fit, the co-occurrence ranking chose better patterns than the
approximate inverse at density 50 (README, "Closed-form models"). The cost of every step is bounded by nnz(G), the
density budgets and n * top_m * (32 top_m)^2 for the re-fit, not by n^2.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch

from fastrec import ops
from fastrec.linear._base import csr_tensors, sparse_gram, top_per_item
from fastrec.linear.refit import refit_columns

__all__ = ["cooccurrence_support", "sparse_ease"]


def _csr_tensors_f64(m: sp.csr_matrix):
    """(indptr, indices, float64 values) of a CSR matrix with real-valued entries."""
    indptr, indices, _ = csr_tensors(m)
    return indptr, indices, torch.from_numpy(np.ascontiguousarray(m.data, dtype=np.float64))


PATTERNS = ("cooccurrence", "inverse")


def sparse_ease(x: sp.csr_matrix, l2: float, *, top_m: int = 128, pattern: str = "cooccurrence", gram_top_m: int = 0,
                density: float = 50.0, drop_tol: float = 1e-4, dtype: torch.dtype = torch.float32,
                progress: bool = False) -> tuple[sp.csr_matrix, dict[str, float]]:
    """Sparse EASE weights B (scipy CSR [n, n], zero diagonal, at most ``top_m`` entries per row) and the seconds
    of each phase. ``pattern`` chooses where the kept weights come from (see the module docstring)."""
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
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
    g = sparse_gram(indptr, indices, values, n, top_m=gram_top_m, dtype=torch.float64)
    if gram_top_m:
        g = g.maximum(g.T).tocsr()  # equal values where both rows kept the pair: the union of the kept entries
        # Pruning leaves an indefinite matrix in general. Each dropped pair e = g_ij >= 0 goes onto both diagonals
        # instead ([[e, -e], [-e, e]] is positive semi-definite), so the pruned matrix stays >= X^T X. The row sums
        # of X^T X are X^T (X 1); the dropped part of row i is its row sum minus the kept entries' sum.
        full_rows = np.asarray(x.T @ (x @ np.ones(n)), dtype=np.float64).ravel()
        dropped = np.maximum(full_rows - np.asarray(g.sum(axis=1)).ravel(), 0.0)
        g = (g + sp.diags(dropped, format="csr")).tocsr()
    lap("gram")
    if pattern == "cooccurrence":
        counts = np.asarray(x.multiply(x).sum(axis=0), dtype=np.float64).ravel()
        support = cooccurrence_support(g, counts, top_m, "source")
    else:
        scores = _approximate_weights(g, l2, 2 * top_m, density, drop_tol, lap)
        support = top_per_item(scores, top_m, "source", signed=True)
        del scores
    support = top_per_item(support, 32 * top_m, "target")
    lap("pattern")
    b = refit_columns(g, support.tocsc(), l2).tocsr()
    b.eliminate_zeros()
    b = b.astype(np.float32 if dtype == torch.float32 else np.float64)
    b.sort_indices()
    lap("refit")
    return b, seconds


def cooccurrence_support(gram: sp.csr_matrix, counts: np.ndarray, top_m: int, per: str) -> sp.csr_matrix:
    """The ``"cooccurrence"`` pattern: every item keeps its ``top_m`` nearest items by the cosine similarity of
    their training columns (``counts``: the columns' squared norms). ``per="source"``: row i keeps the targets j of
    largest g_ij / sqrt(counts_j); ``per="target"``: column j keeps the sources i of largest g_ij / sqrt(counts_i)
    (the cosine times a constant of the row or column). Returns those scores as a CSR matrix [source, target]."""
    n = gram.shape[0]
    rows = np.repeat(np.arange(n), np.diff(gram.indptr))
    off = gram.indices != rows
    other = gram.indices[off] if per == "source" else rows[off]
    scores = sp.csr_matrix((gram.data[off] / np.sqrt(counts[other]), (rows[off], gram.indices[off])), shape=(n, n))
    return top_per_item(scores, top_m, per, signed=True)


def _approximate_weights(g: sp.csr_matrix, l2: float, top_m: int, density: float, drop_tol: float,
                         lap) -> sp.csr_matrix:
    """The SANSA-like approximation of B from G (steps 2-5 of the module docstring), at most ``top_m`` weights per
    target column, zero diagonal."""
    n = g.shape[0]
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
    p = sparse_gram(*_csr_tensors_f64(w), n, top_m=top_m, dtype=torch.float64)
    del w
    diag = p.diagonal()
    # column j of B = -(row j of P) / p_jj, diagonal dropped: built as B^T's rows, then transposed
    bt = sp.csr_matrix((-p.data / np.repeat(diag, np.diff(p.indptr)), p.indices, p.indptr), shape=(n, n))
    bt.setdiag(0.0)
    bt.eliminate_zeros()
    return bt.T.tocsr()
