"""Beyond-accuracy metrics over recommendation lists: catalog coverage and intra-list diversity.

``topk``: a ``[n_users, K]`` integer array/tensor of recommended item ids; entries < 0 are padding (a list shorter than
K) and are ignored.

- Coverage@K  = |union over users of their top-K items| / n_items
- ILD@K       = mean over users of  (2 / (L (L - 1))) * sum_{i < j} (1 - cos(v_i, v_j)),  L = the list's length;
                users with L < 2 are skipped (they have no pair). Item vectors with zero norm raise.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["catalog_coverage", "intra_list_diversity"]


def _topk_array(topk) -> np.ndarray:
    a = topk.detach().cpu().numpy() if isinstance(topk, torch.Tensor) else np.asarray(topk)
    if a.ndim != 2:
        raise ValueError(f"topk: expected a 2-D array [n_users, K], got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"topk: expected integer item ids, got dtype {a.dtype}")
    return a


def catalog_coverage(topk, n_items: int) -> float:
    """Fraction of the catalog that appears in at least one user's top-K list."""
    if n_items <= 0:
        raise ValueError(f"n_items: must be positive, got {n_items}")
    a = _topk_array(topk)
    ids = a[a >= 0]
    if ids.size and ids.max() >= n_items:
        raise ValueError(f"topk: item id {int(ids.max())} out of range for n_items={n_items}")
    return float(np.unique(ids).size / n_items)


def intra_list_diversity(topk, item_vectors) -> float:
    """Mean pairwise cosine distance (1 - cos) within each list, averaged over lists with at least two items."""
    a = torch.as_tensor(_topk_array(topk), dtype=torch.long)
    v = torch.as_tensor(item_vectors, dtype=torch.float64)
    if v.dim() != 2:
        raise ValueError(f"item_vectors: expected [n_items, dim], got shape {tuple(v.shape)}")
    if a.numel() and int(a.max()) >= v.shape[0]:
        raise ValueError(f"topk: item id {int(a.max())} out of range for {v.shape[0]} item vectors")
    norms = v.norm(dim=1)
    if bool((norms == 0).any()):
        raise ValueError("item_vectors: zero-norm vectors have no cosine")
    u = v / norms[:, None]
    valid = a >= 0
    vec = u[a.clamp(min=0)] * valid[..., None]  # [n, K, d], padding rows zeroed
    length = valid.sum(dim=1).to(torch.float64)
    s = vec.sum(dim=1)
    # sum_{i<j} cos_ij = (|sum_i u_i|^2 - sum_i |u_i|^2) / 2, with |u_i| = 1
    pair_cos = ((s * s).sum(dim=1) - length) / 2.0
    keep = length >= 2
    if not bool(keep.any()):
        raise ValueError("topk: no list has two or more items; intra-list diversity is undefined")
    n_pairs = length[keep] * (length[keep] - 1) / 2.0
    return float((1.0 - pair_cos[keep] / n_pairs).mean())
