"""Neighbourhood collaborative filtering on explicit ratings: user-user or item-item, Surprise's KNN family.

Similarities between rows of the entity x rating matrix (items for ``kind="item"``, users for ``kind="user"``) over
their common support, as Surprise computes them:

- ``"cosine"``: sum(x y) / sqrt(sum x^2 sum y^2) over the common raters;
- ``"pearson"``: Pearson correlation over the common raters (each side centred on its own mean there);
- ``"pearson_baseline"``: like cosine on the baseline residuals r - b_ui (Koren's shrunk baseline correlation);

each multiplied by ``(n - 1) / (n - 1 + shrinkage)``, n the number of common raters (``shrinkage=0``: none), and 0
where n < ``min_support``. They come from sparse products (numerators X Y^T, the co-rating counts B B^T, the
common-support norms (X o X) B^T) computed ``block_size`` rows at a time, each block pruned to its
``max_neighbors`` most similar entities: the memory is ``block_size x n`` plus the kept neighbours, never a dense
n x n matrix when ``max_neighbors`` is set.

Prediction for (u, i) (item-based; user-based swaps the roles): among the items j rated by u, the ``k`` with the
largest positive similarity to i; ``center="baseline"`` (KNNBaseline): ``b_ui + sum s_ij (r_uj - b_uj) / sum s_ij``;
``"mean"`` (KNNWithMeans): the same around the entities' mean ratings; ``"none"`` (KNNBasic): ``sum s_ij r_uj /
sum s_ij``. With fewer than ``min_k`` such neighbours the estimate is the centre alone (the baseline, the mean, or
the global mean). Baselines are fitted by Surprise's alternating least squares (``bsl_epochs``, ``reg_user``,
``reg_item``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from numba import njit, prange
from torch import Tensor

from fastrec.data import Interactions
from fastrec.models.cf.base import Recommender, check_positive, interactions_like, progress

__all__ = ["KNN", "baselines_als"]

SIMILARITIES = ("cosine", "pearson", "pearson_baseline")
CENTERS = ("baseline", "mean", "none")


def baselines_als(train: Interactions, epochs: int = 10, reg_user: float = 15.0, reg_item: float = 10.0
                  ) -> tuple[float, np.ndarray, np.ndarray]:
    """(mu, b_u, b_i) by Surprise's ALS: alternately b_i = sum(r - mu - b_u) / (reg_item + |U_i|) and
    b_u = sum(r - mu - b_i) / (reg_user + |I_u|), ``epochs`` rounds, starting from zero."""
    rows, cols = train.rowids(), train.indices
    r = train.values.astype(np.float64)
    mu = float(r.mean())
    bu, bi = np.zeros(train.n_users), np.zeros(train.n_items)
    n_u, n_i = np.bincount(rows, minlength=train.n_users), np.bincount(cols, minlength=train.n_items)
    for _ in range(epochs):
        bi = np.bincount(cols, weights=r - mu - bu[rows], minlength=train.n_items) / (reg_item + n_i)
        bu = np.bincount(rows, weights=r - mu - bi[cols], minlength=train.n_users) / (reg_user + n_u)
    return mu, bu, bi


def _similarity_block(m: sp.csr_matrix, pattern: sp.csr_matrix, lo: int, hi: int, kind: str, shrinkage: float,
                      min_support: int) -> np.ndarray:
    """Dense similarities of rows lo..hi of ``m`` with every row ([hi - lo, n]); ``pattern`` is m's 0/1 pattern."""
    x, b = m[lo:hi], pattern[lo:hi]
    sq, mt, pt = m.multiply(m).T.tocsc(), m.T.tocsc(), pattern.T.tocsc()
    n = (b @ pt).toarray()
    prods = (x @ mt).toarray()
    sq_i = (x.multiply(x) @ pt).toarray()  # sum over common raters of x_i^2
    sq_j = (b @ sq).toarray()
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "pearson":
            s_i, s_j = (x @ pt).toarray(), (b @ mt).toarray()
            num = n * prods - s_i * s_j
            den = np.sqrt(np.maximum(n * sq_i - s_i**2, 0) * np.maximum(n * sq_j - s_j**2, 0))
        else:
            num, den = prods, np.sqrt(sq_i * sq_j)
        sim = np.where(den > 0, num / den, 0.0)
        if shrinkage:
            sim *= np.maximum(n - 1, 0) / (np.maximum(n - 1, 0) + shrinkage)
    sim[n < min_support] = 0.0
    return sim


@njit(cache=True, parallel=True)
def _predict_kernel(users: np.ndarray, items: np.ndarray, r_indptr: np.ndarray, r_indices: np.ndarray,
                    r_values: np.ndarray, s_indptr: np.ndarray, s_indices: np.ndarray, s_values: np.ndarray,
                    center_ent: np.ndarray, center_other: np.ndarray, base: np.ndarray, fallback: np.ndarray,
                    k: int, min_k: int, by_item: bool) -> np.ndarray:
    """For each pair: the k most similar rated neighbours (positive similarity) and the weighted average of their
    centred ratings. ``r_*``: the ratings of each "other" entity (users for item-based); ``s_*``: the entity
    similarity CSR (rows sorted); ``center_ent[e]``: the centre of entity e (b_i or mean); ``center_other``: the
    other side's part of the baseline; ``base[p]``: the centre the average is added to, ``fallback[p]``: the estimate
    with fewer than min_k neighbours."""
    n = users.shape[0]
    out = np.empty(n, np.float64)
    for p in prange(n):
        o = users[p] if by_item else items[p]
        e = items[p] if by_item else users[p]
        a, b = s_indptr[e], s_indptr[e + 1]
        ra, rb = r_indptr[o], r_indptr[o + 1]
        sims = np.empty(rb - ra, np.float64)
        devs = np.empty(rb - ra, np.float64)
        m = 0
        for t in range(ra, rb):
            j = r_indices[t]
            lo, hi = a, b  # binary search of j in the similarity row of e
            while lo < hi:
                mid = (lo + hi) >> 1
                if s_indices[mid] < j:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < b and s_indices[lo] == j and s_values[lo] > 0:
                sims[m] = s_values[lo]
                devs[m] = r_values[t] - center_ent[j] - center_other[o]
                m += 1
        if m > k:  # keep the k largest similarities
            order = np.argsort(-sims[:m], kind="mergesort")[:k]
            sims2, devs2 = sims[order], devs[order]
            m = k
        else:
            sims2, devs2 = sims[:m], devs[:m]
        if m < min_k or m == 0:
            out[p] = fallback[p]
            continue
        num = 0.0
        den = 0.0
        for t in range(m):
            num += sims2[t] * devs2[t]
            den += sims2[t]
        out[p] = base[p] + num / den
    return out


class KNN(Recommender):
    """User-user or item-item neighbourhood CF (see the module docstring).

    Args:
        n_users, n_items: id counts.
        kind: ``"item"`` or ``"user"``.
        similarity: ``"cosine"``, ``"pearson"`` or ``"pearson_baseline"``.
        k: neighbours per prediction; min_k: fewer than this falls back to the centre.
        center: ``"baseline"`` (KNNBaseline), ``"mean"`` (KNNWithMeans) or ``"none"`` (KNNBasic).
        shrinkage: similarity shrinkage (Surprise's default for pearson_baseline: 100).
        min_support: common raters needed for a nonzero similarity.
        max_neighbors: neighbours kept per entity in the similarity matrix (None: all nonzero ones).
        block_size: entities per similarity block.
        bsl_epochs, reg_user, reg_item: the ALS baselines (Surprise's defaults).
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        kind: str = "item",
        similarity: str = "pearson_baseline",
        k: int = 40,
        *,
        min_k: int = 1,
        center: str = "baseline",
        shrinkage: float = 100.0,
        min_support: int = 1,
        max_neighbors: int | None = None,
        block_size: int = 1024,
        bsl_epochs: int = 10,
        reg_user: float = 15.0,
        reg_item: float = 10.0,
    ) -> None:
        super().__init__(n_users, n_items)
        if kind not in ("item", "user"):
            raise ValueError(f"kind must be 'item' or 'user', got {kind!r}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if center not in CENTERS:
            raise ValueError(f"center must be one of {CENTERS}, got {center!r}")
        check_positive("k", k, integer=True)
        check_positive("block_size", block_size, integer=True)
        if max_neighbors is not None:
            check_positive("max_neighbors", max_neighbors, integer=True)
        if isinstance(min_k, bool) or not isinstance(min_k, int) or min_k < 0:
            raise ValueError(f"min_k must be an int >= 0, got {min_k!r}")
        if not shrinkage >= 0:
            raise ValueError(f"shrinkage must be >= 0, got {shrinkage!r}")
        self.kind, self.similarity, self.k, self.min_k, self.center = kind, similarity, k, min_k, center
        self.shrinkage, self.min_support, self.max_neighbors = float(shrinkage), int(min_support), max_neighbors
        self.block_size, self.bsl = block_size, (bsl_epochs, reg_user, reg_item)
        self.sim: sp.csr_matrix | None = None
        self.mu, self.bu, self.bi = 0.0, np.zeros(n_users), np.zeros(n_items)
        self.user_mean, self.item_mean = np.zeros(n_users), np.zeros(n_items)

    def fit(self, train: Interactions, *, show_progress: bool = True) -> KNN:
        """Baselines, entity means and the pruned similarity matrix from the ratings in ``train``."""
        train = interactions_like(train, self)
        if train.nnz == 0:
            raise ValueError("train has no ratings")
        self.set_seen(train)
        self.mu, self.bu, self.bi = baselines_als(train, *self.bsl)
        rows, cols, r = train.rowids(), train.indices, train.values.astype(np.float64)
        deg_u, deg_i = train.user_degrees(), train.item_popularity()
        self.user_mean = np.where(deg_u > 0, np.bincount(rows, r, self.n_users) / np.maximum(deg_u, 1), self.mu)
        self.item_mean = np.where(deg_i > 0, np.bincount(cols, r, self.n_items) / np.maximum(deg_i, 1), self.mu)
        values = r - (self.mu + self.bu[rows] + self.bi[cols]) if self.similarity == "pearson_baseline" else r
        m = sp.csr_matrix((values, cols, train.indptr), shape=train.shape)
        if self.kind == "item":
            m = sp.csr_matrix(m.T)
        m.sort_indices()
        pattern = sp.csr_matrix((np.ones(m.nnz), m.indices, m.indptr), shape=m.shape)
        n = m.shape[0]
        blocks = []
        for lo in progress(range(0, n, self.block_size), "similarities", show_progress):
            hi = min(lo + self.block_size, n)
            s = _similarity_block(m, pattern, lo, hi, self.similarity, self.shrinkage, self.min_support)
            s[np.arange(hi - lo), np.arange(lo, hi)] = 0.0  # an entity is not its own neighbour
            if self.max_neighbors is not None and self.max_neighbors < n:
                cut = np.argpartition(-s, self.max_neighbors - 1, axis=1)[:, self.max_neighbors:]
                np.put_along_axis(s, cut, 0.0, axis=1)
            blocks.append(sp.csr_matrix(s.astype(np.float32)))
        self.sim = sp.csr_matrix(sp.vstack(blocks))
        self.sim.sort_indices()
        return self

    def _extra_state(self) -> dict[str, Any]:
        return {"sim": self.sim, "mu": self.mu, "bu": self.bu, "bi": self.bi, "user_mean": self.user_mean,
                "item_mean": self.item_mean}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        for key, v in extra.items():
            setattr(self, key, v)

    def score(self, users: Any, items: Any) -> Tensor:
        """Predicted ratings of (user, item) pairs."""
        if self.sim is None:
            raise RuntimeError("KNN.score before fit()")
        u, i, shape = self._pairs(users, items)
        un, inn = u.numpy(), i.numpy()
        by_item = self.kind == "item"
        r = self.seen if by_item else sp.csr_matrix(self.seen.T)  # ratings of each "other" entity
        if self.center == "baseline":
            base = self.mu + self.bu[un] + self.bi[inn]
            c_ent, c_other = (self.bi, self.bu) if by_item else (self.bu, self.bi)
            c_ent = c_ent + self.mu
        elif self.center == "mean":
            base = self.item_mean[inn] if by_item else self.user_mean[un]
            c_ent, c_other = (self.item_mean if by_item else self.user_mean), np.zeros(r.shape[0])
        else:
            base = np.zeros(un.size)
            c_ent, c_other = np.zeros(self.sim.shape[0]), np.zeros(r.shape[0])
        fallback = np.full(un.size, self.mu) if self.center == "none" else base
        out = _predict_kernel(un, inn, r.indptr, r.indices, r.data.astype(np.float64), self.sim.indptr,
                              self.sim.indices, self.sim.data.astype(np.float64), c_ent.astype(np.float64),
                              c_other.astype(np.float64), base.astype(np.float64), fallback.astype(np.float64),
                              self.k, self.min_k, by_item)
        return torch.from_numpy(out.astype(np.float32)).reshape(shape)
