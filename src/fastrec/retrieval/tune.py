"""Tuning the search-time knob of an approximate index (IVF ``nprobe``, HNSW ``ef_search``) against exact search."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fastrec.retrieval.base import Index, as_vectors, recall_at_k
from fastrec.retrieval.faiss_index import FaissIndex

__all__ = ["TuneResult", "tune_search"]

DEFAULT_GRID = {"ivf": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512), "hnsw": (16, 32, 64, 128, 256, 512, 1024, 2048)}


@dataclass(frozen=True)
class TuneResult:
    """The chosen setting and every setting tried: (value, recall@k, queries per second)."""

    param: str  # "nprobe" or "ef_search"
    value: int
    recall: float
    qps: float
    reached: bool  # False: no value in the grid reached the target; value is the most accurate one tried
    table: tuple[tuple[int, float, float], ...]


def tune_search(
    index: FaissIndex,
    queries,
    exact: Index,
    *,
    k: int = 10,
    target_recall: float = 0.95,
    grid=None,
    sample: int | None = 1000,
    seed: int = 0,
    apply: bool = True,
) -> TuneResult:
    """Finds the smallest ``nprobe`` / ``ef_search`` whose recall@k against ``exact`` reaches ``target_recall``.

    ``queries`` are held-out queries (not the item vectors); at most ``sample`` of them (drawn with ``seed``) are
    used. Values are tried in increasing order and the search stops at the first that reaches the target (recall
    grows with the knob). With ``apply=True`` the chosen value is set on the index.
    """
    if index.kind not in DEFAULT_GRID:
        raise ValueError(f"index: only IVF and HNSW indexes have a search knob to tune, got kind={index.kind!r}")
    if not 0 < target_recall <= 1:
        raise ValueError(f"target_recall: must lie in (0, 1], got {target_recall}")
    q = as_vectors(queries, "queries")
    if sample is not None and q.shape[0] > sample:
        q = q[np.sort(np.random.default_rng(seed).choice(q.shape[0], sample, replace=False))]
    param = "nprobe" if index.kind == "ivf" else "ef_search"
    values = sorted(set(int(v) for v in (grid or DEFAULT_GRID[index.kind])))
    if index.kind == "ivf":
        values = [v for v in values if v <= index.params["nlist"]] or [index.params["nlist"]]
    _, truth = exact.search(q, k)
    old = index.params[param]
    table = []
    chosen = None
    for v in values:
        index.set_search_params(**{param: v})
        t0 = time.perf_counter()
        _, ids = index.search(q, k)
        qps = q.shape[0] / max(time.perf_counter() - t0, 1e-9)
        rec = recall_at_k(ids, truth)
        table.append((v, rec, qps))
        if rec >= target_recall:
            chosen = (v, rec, qps)
            break
    reached = chosen is not None
    if chosen is None:
        chosen = max(table, key=lambda row: row[1])
    index.set_search_params(**{param: chosen[0] if apply else old})
    return TuneResult(param, chosen[0], chosen[1], chosen[2], reached, tuple(table))
