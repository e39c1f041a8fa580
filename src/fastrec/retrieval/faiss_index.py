"""FAISS indexes (Flat, IVF, HNSW) behind :class:`fastrec.retrieval.Index`.

- ``kind="flat"``: ``IndexFlatIP``, exact (FAISS's BLAS path).
- ``kind="ivf"``: ``IndexIVFFlat`` with ``nlist`` inverted lists (k-means on at most ``train_points`` vectors,
  default ``64 * nlist``); ``nprobe`` lists are visited per query.
- ``kind="hnsw"``: ``IndexHNSWFlat`` with ``M`` links per node, ``ef_construction`` at build, ``ef_search`` per query.

All search by inner product; ``metric="cosine"`` L2-normalizes items and queries. HNSW offers two graphs:

- ``hnsw_space="ip"`` (default): the graph is built and searched on inner products directly (a non-metric
  similarity graph, which Morozov & Babenko, NeurIPS 2018, found better for MIPS than metric reductions);
- ``hnsw_space="l2_reduction"``: the exact MIPS-to-L2 reduction (Bachrach et al. 2014): item x becomes
  ``[x, sqrt(R^2 - |x|^2)]`` (R the largest item norm), query q becomes ``[q, 0]``, so
  ``|q' - x'|^2 = |q|^2 + R^2 - 2 q.x``; scores are converted back to inner products. Measured on clustered 128-d
  data with 2 threads it won at 200k items (recall@10 .993 at efSearch 256 against .987 for "ip") and built ~2.7x
  faster, but lost at 1M items (.61 against .91 at efSearch 128): queries sit far from every augmented point.

Threads: FAISS's OpenMP pool is global. ``threads=N`` calls ``faiss.omp_set_num_threads(N)`` before build and search;
None leaves FAISS's setting alone.
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
    filter_excluded,
    normalize_rows,
)

__all__ = ["FaissIndex"]

KINDS = ("flat", "ivf", "hnsw")


def _faiss():
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - faiss-cpu is a dependency of this module only
        raise ImportError("fastrec.retrieval.FaissIndex needs faiss: pip install faiss-cpu") from e
    return faiss


class FaissIndex(Index):
    """A FAISS index over item vectors. Build with :meth:`build` (or the constructor's ``vectors``).

    Defaults (from ``benchmarks/test_retrieval.py``, 1M x 128-d, 2 threads): IVF with ``nlist=1024`` lists (fewer
    below 40k items) and ``nprobe=8`` reached recall@10 >= .99 on the clustered and the "harder" sets; HNSW
    (``M=32``, ``ef_construction=40``) reached .954 at ``ef_search=512`` on the clustered set (the harder set needed
    2048 for .963). Nearly isotropic data need far more (IVF1024 .78 at nprobe 128, HNSW .93 at efSearch 2048):
    measure with :func:`fastrec.retrieval.tune_search` on held-out queries.
    """

    def __init__(
        self,
        kind: str = "ivf",
        metric: str = "ip",
        *,
        nlist: int | None = None,
        nprobe: int = 8,
        M: int = 32,
        ef_construction: int = 40,
        ef_search: int = 512,
        train_points: int | None = None,
        hnsw_space: str = "ip",
        threads: int | None = None,
        seed: int = 0,
        vectors=None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {list(KINDS)}, got {kind!r}")
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {list(METRICS)}, got {metric!r}")
        for name, v in (("nlist", 1 if nlist is None else nlist), ("nprobe", nprobe), ("M", M), ("ef_construction", ef_construction),
                        ("ef_search", ef_search)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        if hnsw_space not in ("ip", "l2_reduction"):
            raise ValueError(f"hnsw_space: expected 'ip' or 'l2_reduction', got {hnsw_space!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads: must be >= 1, got {threads}")
        self.kind, self.metric = kind, metric
        self.params = {"nlist": None if nlist is None else int(nlist), "nprobe": int(nprobe), "M": int(M),
                       "ef_construction": int(ef_construction), "ef_search": int(ef_search),
                       "train_points": train_points, "hnsw_space": hnsw_space, "seed": int(seed)}
        self.threads = threads
        self.index = None
        self._max_norm2 = 0.0  # HNSW: the largest squared item norm of the MIPS-to-L2 reduction
        self.n_items = self.dim = 0
        self.build_seconds = 0.0
        if vectors is not None:
            self.build(vectors)

    # -- build ------------------------------------------------------------------------------------------------
    def _set_threads(self) -> None:
        if self.threads is not None:
            _faiss().omp_set_num_threads(self.threads)

    def build(self, vectors) -> FaissIndex:
        """Builds the index from ``[n_items, d]`` vectors (trains IVF first). Returns self."""
        import time

        faiss = _faiss()
        v = as_vectors(vectors, "vectors")
        if v.shape[0] == 0:
            raise ValueError("vectors: empty item set")
        if self.metric == "cosine":
            v = normalize_rows(v, "vectors")
        n, d = v.shape
        p = self.params
        self._set_threads()
        t0 = time.perf_counter()
        if self.kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif self.kind == "ivf":
            if p["nlist"] is None:  # 1024 lists (measured at 1M items), fewer for small sets: >= 39 points per list
                p["nlist"] = max(1, min(1024, n // 39))
            if p["nlist"] > n:
                raise ValueError(f"nlist: {p['nlist']} lists need at least as many vectors, got {n}")
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, p["nlist"], faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = p["seed"]
            n_train = min(n, p["train_points"] or 64 * p["nlist"])
            index.cp.max_points_per_centroid = max(1, -(-n_train // p["nlist"]))
            sample = v if n_train == n else v[np.random.default_rng(p["seed"]).choice(n, n_train, replace=False)]
            index.train(sample)
        elif p["hnsw_space"] == "ip":
            index = faiss.IndexHNSWFlat(d, p["M"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = p["ef_construction"]
        else:
            norms2 = np.einsum("ij,ij->i", v, v, dtype=np.float64)
            self._max_norm2 = float(norms2.max())
            v = self._augment_items(v, norms2)
            index = faiss.IndexHNSWFlat(d + 1, p["M"], faiss.METRIC_L2)
            index.hnsw.efConstruction = p["ef_construction"]
        index.add(v)
        self.build_seconds = time.perf_counter() - t0
        self.index, self.n_items, self.dim = index, n, d
        self._apply_search_params()
        return self

    def _augment_items(self, v: np.ndarray, norms2: np.ndarray) -> np.ndarray:
        extra = np.sqrt(np.maximum(self._max_norm2 - norms2, 0.0)).astype(np.float32)
        return np.ascontiguousarray(np.hstack([v, extra[:, None]]))

    def _apply_search_params(self) -> None:
        if self.kind == "ivf":
            self.index.nprobe = self.params["nprobe"]
        elif self.kind == "hnsw":
            self.index.hnsw.efSearch = self.params["ef_search"]

    def set_search_params(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Changes the search-time knob: ``nprobe`` (IVF) or ``ef_search`` (HNSW)."""
        for name, v in (("nprobe", nprobe), ("ef_search", ef_search)):
            if v is not None:
                if not isinstance(v, (int, np.integer)) or v < 1:
                    raise ValueError(f"{name}: must be a positive integer, got {v!r}")
                self.params[name] = int(v)
        if self.index is not None:
            self._apply_search_params()

    # -- search -----------------------------------------------------------------------------------------------
    def _raw_search(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        """(inner-product scores, ids) of the index's top kk for queries q (float32 [n, d])."""
        kk = min(kk, self.n_items)
        if self.kind != "hnsw":
            return self.index.search(q, kk)
        reduced = self.params["hnsw_space"] == "l2_reduction"
        qa = np.ascontiguousarray(np.hstack([q, np.zeros((q.shape[0], 1), np.float32)])) if reduced else q
        ef = self.index.hnsw.efSearch
        if ef < kk:  # HNSW returns at most efSearch results: widen it for this call
            self.index.hnsw.efSearch = kk
        try:
            dist, ids = self.index.search(qa, kk)
        finally:
            self.index.hnsw.efSearch = ef
        if not reduced:
            return dist, ids
        q_norm2 = np.einsum("ij,ij->i", q, q, dtype=np.float64)[:, None]
        scores = ((q_norm2 + self._max_norm2 - dist) / 2.0).astype(np.float32)
        return scores, ids

    def search(self, queries, k: int, exclude=None, *, block: int = 4096) -> tuple[Tensor, Tensor]:
        if self.index is None:
            raise RuntimeError("FaissIndex.search: the index has not been built (call build(vectors))")
        q = self._check_queries(queries, k)
        excl = exclusion_csr(exclude, q.shape[0], self.n_items)
        self._set_threads()
        out_s = np.empty((q.shape[0], k), dtype=np.float32)
        out_i = np.empty((q.shape[0], k), dtype=np.int64)
        for q0 in range(0, q.shape[0], block):
            qb = q[q0 : q0 + block]
            if excl is None:
                s, i = self._raw_search(qb, k)
                s = np.where(i < 0, -np.inf, s).astype(np.float32)
                out_s[q0 : q0 + qb.shape[0]], out_i[q0 : q0 + qb.shape[0]] = s, i
                continue
            counts = np.diff(excl.indptr)[q0 : q0 + qb.shape[0]]
            extra = int(np.percentile(counts, 90)) if counts.size else 0
            s, i = self._raw_search(qb, k + extra)
            s2, i2, complete = filter_excluded(s, i, excl, q0, k, self.n_items)
            for r in np.flatnonzero(~complete):  # rows whose exclusions ate into the top k: search them wider
                sr, ir = self._raw_search(qb[r : r + 1], k + int(counts[r]))
                s3, i3, _ = filter_excluded(sr, ir, excl, q0 + r, k, self.n_items)
                s2[r], i2[r] = s3[0], i3[0]
            out_s[q0 : q0 + qb.shape[0]], out_i[q0 : q0 + qb.shape[0]] = s2, i2
        return torch.from_numpy(out_s), torch.from_numpy(out_i)

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        if self.index is None:
            raise RuntimeError("FaissIndex.save: the index has not been built")
        meta = {"type": "faiss", "kind": self.kind, "metric": self.metric, "params": self.params,
                "threads": self.threads, "n_items": self.n_items, "dim": self.dim, "max_norm2": self._max_norm2}
        atomic_save_npz(path, meta, faiss_index=_faiss().serialize_index(self.index))

    @classmethod
    def _from_saved(cls, meta: dict, arrays: dict[str, np.ndarray]) -> FaissIndex:
        p = meta["params"]
        obj = cls(meta["kind"], meta["metric"], nlist=p["nlist"], nprobe=p["nprobe"], M=p["M"],
                  ef_construction=p["ef_construction"], ef_search=p["ef_search"], train_points=p["train_points"],
                  hnsw_space=p["hnsw_space"], threads=meta["threads"], seed=p["seed"])
        obj.index = _faiss().deserialize_index(arrays["faiss_index"])
        obj.n_items, obj.dim, obj._max_norm2 = meta["n_items"], meta["dim"], meta["max_norm2"]
        obj._apply_search_params()
        return obj
