"""Top-K ranking metrics, per user, from a hit matrix.

Every function here takes ``hits``: a ``[n_users, K]`` float tensor whose entry ``[u, i]`` is the gain of the item
ranked at position ``i`` (0-based) in user ``u``'s top-K list, 0 for an irrelevant item (binary relevance: 1 for a
relevant item). Positions are already final: ties between scores have been resolved by the caller (the protocols in
:mod:`fastrec.evaluate` resolve them deterministically, see there). Each function returns the per-user values as a
float64 ``[n_users]`` tensor; averaging (and skipping users without relevant items, which the functions refuse) is the
caller's job.

Notation: ``rel_i`` = 1 if position i holds a relevant item else 0, ``g_i`` = its gain, ``R`` = the user's number of
relevant items (all of them, not only those in the top K), ``disc(i) = 1 / log2(i + 2)``.

- HR@K (hit rate)        = 1 if sum_i rel_i > 0 else 0
- Precision@K            = sum_i rel_i / K
- Recall@K               = sum_i rel_i / R                       (``denominator="relevant"``, the default: LightGCN,
                                                                  RecBole, BARS)
                         = sum_i rel_i / min(K, R)               (``denominator="min_k"``: "truncated recall", as in
                                                                  Microsoft Recommenders' recall_at_k variant / some
                                                                  papers; reaches 1 even when R > K)
- NDCG@K                 = DCG@K / IDCG@K,  DCG@K = sum_i g_i disc(i) (linear gain; pass 2**r - 1 as gains for the
                           exponential form), IDCG@K = DCG@K of the user's relevant gains sorted in decreasing order
                           (binary: sum_{i < min(K, R)} disc(i))
- MRR@K                  = 1 / (1 + position of the first relevant item), 0 when none is in the top K
- MAP@K (AP@K per user)  = sum_i rel_i * Precision@(i+1) / min(K, R)   (the denominator convention of RecBole and
                           most CF papers; ``ml_metrics.apk`` uses the same)
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "RANKING_METRICS",
    "average_precision",
    "dcg_discounts",
    "hit_rate",
    "ideal_dcg_binary",
    "mrr",
    "ndcg",
    "precision",
    "recall",
]

#: Names accepted by the protocols for the metrics of this module (each reported as ``name@K``).
RANKING_METRICS = ("hr", "recall", "precision", "ndcg", "mrr", "map")


def dcg_discounts(k: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """``[k]`` tensor of ``1 / log2(i + 2)`` for positions ``i = 0 .. k-1``."""
    return 1.0 / torch.log2(torch.arange(k, dtype=dtype) + 2.0)


def _check_hits(hits: Tensor) -> Tensor:
    if not isinstance(hits, Tensor) or hits.dim() != 2:
        raise ValueError(f"hits: expected a 2-D tensor [n_users, K], got {type(hits).__name__} "
                         f"{tuple(getattr(hits, 'shape', ()))}")
    if hits.shape[1] < 1:
        raise ValueError("hits: K (the number of columns) must be >= 1")
    return hits.to(torch.float64)


def _check_n_relevant(n_relevant: Tensor, n_users: int) -> Tensor:
    n_relevant = torch.as_tensor(n_relevant)
    if n_relevant.shape != (n_users,):
        raise ValueError(f"n_relevant: expected shape ({n_users},), got {tuple(n_relevant.shape)}")
    if bool((n_relevant <= 0).any()):
        raise ValueError("n_relevant: every user must have at least one relevant item "
                         "(skip users without test items before computing per-user metrics)")
    return n_relevant.to(torch.float64)


def hit_rate(hits: Tensor) -> Tensor:
    """HR@K = 1 if any of the top K items is relevant, else 0."""
    return (_check_hits(hits) > 0).any(dim=1).to(torch.float64)


def precision(hits: Tensor) -> Tensor:
    """Precision@K = (number of relevant items in the top K) / K."""
    h = _check_hits(hits)
    return (h > 0).sum(dim=1).to(torch.float64) / h.shape[1]


def recall(hits: Tensor, n_relevant: Tensor, denominator: Literal["relevant", "min_k"] = "relevant") -> Tensor:
    """Recall@K = (relevant items in the top K) / R, or / min(K, R) with ``denominator="min_k"``."""
    h = _check_hits(hits)
    n = _check_n_relevant(n_relevant, h.shape[0])
    if denominator == "min_k":
        n = n.clamp(max=h.shape[1])
    elif denominator != "relevant":
        raise ValueError(f"denominator: expected 'relevant' or 'min_k', got {denominator!r}")
    return (h > 0).sum(dim=1).to(torch.float64) / n


def ideal_dcg_binary(n_relevant: Tensor, k: int) -> Tensor:
    """IDCG@K for binary relevance: sum of the first min(K, R) discounts."""
    table = torch.cat([torch.zeros(1, dtype=torch.float64), dcg_discounts(k).cumsum(0)])
    return table[torch.as_tensor(n_relevant).long().clamp(min=0, max=k)]


def ndcg(hits: Tensor, n_relevant: Tensor | None = None, ideal: Tensor | None = None) -> Tensor:
    """NDCG@K = DCG@K / IDCG@K with linear gains.

    Binary relevance: pass ``n_relevant`` (R per user). Graded relevance: pass ``ideal``, a ``[n_users, K']`` tensor
    of each user's relevant gains sorted in decreasing order (zero-padded, K' >= K allowed: only the first K count).
    """
    h = _check_hits(hits)
    k = h.shape[1]
    disc = dcg_discounts(k)
    dcg = h @ disc
    if ideal is not None:
        ideal = torch.as_tensor(ideal, dtype=torch.float64)
        if ideal.dim() != 2 or ideal.shape[0] != h.shape[0] or ideal.shape[1] < k:
            raise ValueError(f"ideal: expected shape ({h.shape[0]}, >= {k}), got {tuple(ideal.shape)}")
        idcg = ideal[:, :k] @ disc
        if bool((idcg <= 0).any()):
            raise ValueError("ideal: every user needs a positive ideal DCG (at least one positive gain)")
    elif n_relevant is not None:
        idcg = ideal_dcg_binary(_check_n_relevant(n_relevant, h.shape[0]), k)
    else:
        raise ValueError("ndcg: pass n_relevant (binary relevance) or ideal (graded relevance)")
    return dcg / idcg


def mrr(hits: Tensor) -> Tensor:
    """MRR@K = 1 / (1 + 0-based position of the first relevant item in the top K), 0 if there is none."""
    h = _check_hits(hits) > 0
    k = h.shape[1]
    pos = torch.arange(k, dtype=torch.float64).expand_as(h)
    first = torch.where(h, pos, torch.full_like(pos, math.inf)).min(dim=1).values
    return torch.where(torch.isfinite(first), 1.0 / (first + 1.0), torch.zeros_like(first))


def average_precision(hits: Tensor, n_relevant: Tensor) -> Tensor:
    """AP@K = sum_i rel_i * Precision@(i+1) / min(K, R); MAP@K is its mean over users."""
    h = _check_hits(hits) > 0
    n = _check_n_relevant(n_relevant, h.shape[0])
    k = h.shape[1]
    rel = h.to(torch.float64)
    prec_at = rel.cumsum(dim=1) / torch.arange(1, k + 1, dtype=torch.float64)
    return (prec_at * rel).sum(dim=1) / n.clamp(max=k)
