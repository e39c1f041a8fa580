"""The small interface every retrieval index implements, and helpers they share.

An index is built from item vectors ``[n_items, d]`` and answers ``search(queries [Q, d], k, exclude=None)`` with
``(scores [Q, k] float32, ids [Q, k] int64)``, best first. ``exclude`` removes ids per query (e.g. the user's seen
items): a scipy CSR ``[Q, n_items]`` (or an object with ``to_scipy()``) or a sequence of Q id collections. Where fewer
than k items remain, the row is padded with id -1 and score -inf. Metrics: ``"ip"`` (inner product) and ``"cosine"``
(inner product of L2-normalized item vectors and queries; a zero vector raises).

``save(path)`` writes one file atomically (a temporary file in the same folder, then ``os.replace``); ``load_index``
reads any index back.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod

import numpy as np
import scipy.sparse as sp
from torch import Tensor

from fastrec._atomic import atomic_open

__all__ = ["Index", "as_vectors", "exclusion_csr", "load_index", "normalize_rows", "recall_at_k"]

METRICS = ("ip", "cosine")


def as_vectors(x, name: str) -> np.ndarray:
    """A C-contiguous float32 [n, d] array from a tensor or array; NaN/inf raise."""
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array [n, d], got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains {int((~np.isfinite(a)).sum())} NaN or infinite value(s)")
    return a


def normalize_rows(a: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{name}: {int((norms == 0).sum())} zero vector(s) have no cosine similarity")
    return np.ascontiguousarray(a / norms, dtype=np.float32)


def exclusion_csr(exclude, n_queries: int, n_items: int) -> sp.csr_matrix | None:
    """Normalizes an ``exclude`` argument to a [n_queries, n_items] CSR with sorted indices (or None)."""
    if exclude is None:
        return None
    if hasattr(exclude, "to_scipy") and not sp.issparse(exclude):
        exclude = exclude.to_scipy()
    if sp.issparse(exclude):
        m = sp.csr_matrix(exclude)
        if m.shape[0] != n_queries or m.shape[1] > n_items:
            raise ValueError(f"exclude: expected shape ({n_queries}, {n_items}), got {m.shape}")
        m = sp.csr_matrix((np.ones(m.nnz, dtype=np.int8), m.indices, m.indptr), shape=(n_queries, n_items))
    else:
        rows = list(exclude)
        if len(rows) != n_queries:
            raise ValueError(f"exclude: expected {n_queries} id collections (one per query), got {len(rows)}")
        lens = [len(r) for r in rows]
        cols = np.concatenate([np.asarray(list(r) if not isinstance(r, np.ndarray) else r, dtype=np.int64).ravel()
                               for r in rows]) if sum(lens) else np.zeros(0, dtype=np.int64)
        if cols.size and (cols.min() < 0 or cols.max() >= n_items):
            raise ValueError(f"exclude: ids must lie in [0, {n_items}), got {int(cols.min())}..{int(cols.max())}")
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        m = sp.csr_matrix((np.ones(cols.size, dtype=np.int8), cols, indptr), shape=(n_queries, n_items))
    m.sum_duplicates()
    m.sort_indices()
    return m


def recall_at_k(approx_ids, exact_ids) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / |exact top-k| (padding ids -1 ignored)."""
    a = approx_ids.numpy() if isinstance(approx_ids, Tensor) else np.asarray(approx_ids)
    e = exact_ids.numpy() if isinstance(exact_ids, Tensor) else np.asarray(exact_ids)
    if a.shape[0] != e.shape[0]:
        raise ValueError(f"approx_ids and exact_ids differ in rows: {a.shape[0]} vs {e.shape[0]}")
    total, n = 0.0, 0
    for ra, re in zip(a, e):
        re = re[re >= 0]
        if re.size == 0:
            continue
        total += np.intersect1d(ra[ra >= 0], re).size / re.size
        n += 1
    if n == 0:
        raise ValueError("exact_ids: no query has any exact neighbour")
    return total / n


def atomic_save_npz(path: str | os.PathLike[str], meta: dict, **arrays: np.ndarray) -> None:
    """Writes an .npz holding ``meta`` (JSON) and arrays to ``path`` through a temporary file and os.replace."""
    with atomic_open(path) as f:
        np.savez(f, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)


def read_npz(path: str | os.PathLike[str]) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["__meta__"].tobytes().decode())
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    return meta, arrays


class Index(ABC):
    """Item vectors searchable by top-k inner product or cosine similarity."""

    metric: str
    n_items: int
    dim: int

    @abstractmethod
    def search(self, queries, k: int, exclude=None) -> tuple[Tensor, Tensor]:
        """(scores [Q, k] float32, ids [Q, k] int64), best first, padded with (-inf, -1)."""

    @abstractmethod
    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the index to one file, atomically."""

    def _check_queries(self, queries, k: int) -> np.ndarray:
        q = as_vectors(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries: expected width {self.dim}, got {q.shape[1]}")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 or k > self.n_items:
            raise ValueError(f"k: must be an integer in [1, {self.n_items}], got {k!r}")
        return normalize_rows(q, "queries") if self.metric == "cosine" else q


def filter_excluded(scores: np.ndarray, ids: np.ndarray, excl: sp.csr_matrix | None, row0: int, k: int,
                    n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drops excluded ids from over-fetched results rows ``row0..``; keeps the first k survivors per row.

    Returns (scores [q, k], ids [q, k], complete [q]): ``complete`` is False where the row ran out of candidates
    while more excluded ids than fetched extras exist (the caller must search that row again with a larger k).
    """
    q, kk = ids.shape
    bad = ids < 0
    if excl is not None:
        sub = excl[row0 : row0 + q]
        codes = np.repeat(np.arange(q, dtype=np.int64), np.diff(sub.indptr)) * n_items + sub.indices
        bad |= np.isin(np.arange(q, dtype=np.int64)[:, None] * n_items + np.where(ids < 0, 0, ids), codes)
    order = np.argsort(bad, axis=1, kind="stable")[:, :k]
    out_ids = np.take_along_axis(ids, order, axis=1)
    out_scores = np.take_along_axis(scores, order, axis=1)
    invalid = np.take_along_axis(bad, order, axis=1)
    out_ids = np.where(invalid, -1, out_ids)
    out_scores = np.where(invalid, -np.inf, out_scores).astype(np.float32)
    n_fetched_valid = (~bad).sum(axis=1)
    n_excl = np.diff(excl.indptr)[row0 : row0 + q] if excl is not None else np.zeros(q, dtype=np.int64)
    # a short row is final only if the fetch could not have been cut by exclusions: kk >= k + n_excl or all items seen
    complete = (n_fetched_valid >= k) | (kk >= np.minimum(k + n_excl, n_items))
    return out_scores, out_ids, complete


def load_index(path: str | os.PathLike[str]) -> Index:
    """Reads an index written by ``save`` (exact or FAISS)."""
    meta, arrays = read_npz(path)
    kind = meta.get("type")
    if kind == "exact":
        from fastrec.retrieval.exact import ExactIndex

        return ExactIndex._from_saved(meta, arrays)
    if kind == "faiss":
        from fastrec.retrieval.faiss_index import FaissIndex

        return FaissIndex._from_saved(meta, arrays)
    raise ValueError(f"path: {path} does not hold a fastrec index (type {kind!r})")

