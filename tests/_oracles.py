"""Brute-force oracles shared by the metric and evaluation tests: textbook definitions in plain Python loops."""

from __future__ import annotations

import math


def brute_ranking_metrics(ranked_gains: list[float], n_rel: int, all_gains: list[float], k: int) -> dict[str, float]:
    """Metrics at k of one user from the gains of their ranked list (0 = irrelevant) and the gains of all their
    relevant items (the ideal list for NDCG)."""
    top = ranked_gains[:k]
    rel = [g > 0 for g in top]
    hits = sum(rel)
    out = {"hr": float(hits > 0), "recall": hits / n_rel, "recall_min": hits / min(k, n_rel), "precision": hits / k}
    out["mrr"] = next((1.0 / (i + 1) for i, r in enumerate(rel) if r), 0.0)
    run, ap = 0, 0.0
    for i, r in enumerate(rel):
        if r:
            run += 1
            ap += run / (i + 1)
    out["map"] = ap / min(k, n_rel)
    ideal = sorted(all_gains, reverse=True)[:k]
    out["ndcg"] = sum(g / math.log2(i + 2) for i, g in enumerate(top)) / sum(
        g / math.log2(i + 2) for i, g in enumerate(ideal))
    return out
