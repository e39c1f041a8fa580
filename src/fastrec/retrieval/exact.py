"""Exact top-k retrieval by blocked matrix multiplication and torch.topk.

Queries are processed ``query_block`` at a time and items ``item_block`` at a time; each item block's top-k is merged
into a running top-k, so peak memory is ``query_block * item_block`` scores however large the catalog. Excluded ids
are set to -inf before the top-k, so the result is exact under exclusion. The returned lists are ordered by (score desc,
id asc); where several items tie at the k-th score, which of them fill the last places is torch.topk's choice.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from fastrec.retrieval.base import (
    METRICS,
    Index,
    as_vectors,
    atomic_save_npz,
    exclusion_csr,
    normalize_rows,
)

__all__ = ["ExactIndex"]


def _topk_stable(scores: Tensor, ids: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-k of each row by (score desc, id asc)."""
    # sort by id first, then a stable sort by score: equal scores keep increasing id order
    by_id = torch.argsort(ids, dim=1, stable=True)
    s = scores.gather(1, by_id)
    i = ids.gather(1, by_id)
    order = torch.argsort(s, dim=1, descending=True, stable=True)[:, :k]
    return s.gather(1, order), i.gather(1, order)


class ExactIndex(Index):
    """Brute-force inner-product / cosine top-k over item vectors (float32)."""

    def __init__(self, vectors, metric: str = "ip", *, query_block: int = 1024, item_block: int = 65536) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {list(METRICS)}, got {metric!r}")
        if query_block < 1 or item_block < 1:
            raise ValueError(f"query_block and item_block must be >= 1, got {query_block}, {item_block}")
        v = as_vectors(vectors, "vectors")
        if v.shape[0] == 0:
            raise ValueError("vectors: empty item set")
        self.metric = metric
        self.vectors = torch.from_numpy(normalize_rows(v, "vectors") if metric == "cosine" else v)
        self.n_items, self.dim = self.vectors.shape
        self.query_block, self.item_block = query_block, item_block

    def search(self, queries, k: int, exclude=None) -> tuple[Tensor, Tensor]:
        q = torch.from_numpy(self._check_queries(queries, k))
        excl = exclusion_csr(exclude, q.shape[0], self.n_items)
        out_s = torch.empty(q.shape[0], k, dtype=torch.float32)
        out_i = torch.empty(q.shape[0], k, dtype=torch.int64)
        with torch.no_grad():
            for q0 in range(0, q.shape[0], self.query_block):
                qb = q[q0 : q0 + self.query_block]
                nq = qb.shape[0]
                if excl is not None:
                    sub = excl[q0 : q0 + nq]
                    e_rows = np.repeat(np.arange(nq, dtype=np.int64), np.diff(sub.indptr))
                    e_cols = sub.indices.astype(np.int64)
                best_s = best_i = None
                for i0 in range(0, self.n_items, self.item_block):
                    i1 = min(i0 + self.item_block, self.n_items)
                    s = qb @ self.vectors[i0:i1].T
                    if excl is not None and e_cols.size:
                        sel = (e_cols >= i0) & (e_cols < i1)
                        s[torch.from_numpy(e_rows[sel]), torch.from_numpy(e_cols[sel] - i0)] = -torch.inf
                    kb = min(k, i1 - i0)
                    vals, idx = torch.topk(s, kb, dim=1)
                    idx = idx + i0
                    if best_s is None:
                        best_s, best_i = vals, idx
                    else:
                        best_s, best_i = _topk_stable(torch.cat([best_s, vals], 1), torch.cat([best_i, idx], 1), k)
                # canonical order within the final list: (score desc, id asc)
                best_s, best_i = _topk_stable(best_s, best_i, k)
                best_i = torch.where(torch.isneginf(best_s), torch.full_like(best_i, -1), best_i)
                out_s[q0 : q0 + nq], out_i[q0 : q0 + nq] = best_s, best_i
        return out_s, out_i

    def save(self, path: str | os.PathLike[str]) -> None:
        meta = {"type": "exact", "metric": self.metric, "query_block": self.query_block,
                "item_block": self.item_block}
        atomic_save_npz(path, meta, vectors=self.vectors.numpy())

    @classmethod
    def _from_saved(cls, meta: dict, arrays: dict[str, np.ndarray]) -> ExactIndex:
        # vectors were stored normalized already for cosine; normalizing again is a no-op up to rounding
        return cls(arrays["vectors"], meta["metric"], query_block=meta["query_block"], item_block=meta["item_block"])
