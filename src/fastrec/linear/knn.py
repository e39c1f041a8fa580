"""Item-based k-nearest-neighbours (Sarwar et al., WWW 2001; Deshpande and Karypis, TOIS 2004) on the native sparse
Gram kernel: cosine similarity with shrinkage, s_ij = g_ij / (sqrt(g_ii g_jj) + shrink) with G = X^T X, zero
diagonal; each item keeps its ``k`` most similar items as neighbours, and a user's score for item j is the sum of
s_ij over the user's items i among j's neighbours (x_u W, W sparse)."""

from __future__ import annotations

import time

import numpy as np
import torch

from fastrec.linear._base import ItemItemModel, csr_tensors, sparse_gram

__all__ = ["ItemKNN"]


class ItemKNN(ItemItemModel):
    """Item-item cosine kNN.

    Args:
        k: neighbours kept per item (>= 1).
        shrink: shrinkage added to the cosine denominator (>= 0): damps similarities supported by few users.
        candidates: co-occurrences kept per item before the similarity (the largest counts; 0: all). Bounds the
            memory of the sparse Gram matrix on large catalogs; leave 0 where it fits.

    After ``fit``: ``weights`` (scipy CSR, column j = the similarities of j's neighbours), ``fit_seconds``.
    """

    _kind = "item_knn"

    def __init__(self, k: int = 100, shrink: float = 0.0, *, candidates: int = 0) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not (np.isfinite(shrink) and shrink >= 0):
            raise ValueError(f"shrink must be finite and >= 0, got {shrink}")
        if candidates < 0:
            raise ValueError(f"candidates must be >= 0 (0: all), got {candidates}")
        self.k = int(k)
        self.shrink = float(shrink)
        self.candidates = int(candidates)
        self.fit_seconds: dict[str, float] = {}

    def _config(self) -> dict:
        return {"k": self.k, "shrink": self.shrink, "candidates": self.candidates}

    def fit(self, interactions) -> ItemKNN:
        """Fits the neighbourhoods on a user x item matrix (binary or non-negative weights). Returns self."""
        x = self._start_fit(interactions)
        n = x.shape[1]
        t0 = time.perf_counter()
        g = sparse_gram(*csr_tensors(x), n, top_m=self.candidates, dtype=torch.float32)
        t1 = time.perf_counter()
        norms = np.sqrt(g.diagonal())
        rows = np.repeat(np.arange(n), np.diff(g.indptr))
        g.data = g.data / (norms[rows] * norms[g.indices] + self.shrink)
        g.setdiag(0.0)
        g.eliminate_zeros()
        self.weights = g
        self.prune(self.k, per="target")
        self.fit_seconds = {"gram": t1 - t0, "similarity": time.perf_counter() - t1}
        return self
