"""Adapters between the two shapes of scoring function the protocols take.

- full scorer: ``users int64 [B] -> scores [B, n_items]`` (what :func:`full_ranking` calls);
- pair scorer: ``(users int64 [B], items int64 [B, C]) -> scores [B, C]`` (what :func:`sampled_ranking` calls).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["dot_scorer", "full_scorer", "pair_scorer"]


def dot_scorer(user_vectors: Tensor, item_vectors: Tensor) -> Callable[[Tensor], Tensor]:
    """Full scorer of a two-tower / MF model: ``user_vectors[users] @ item_vectors.T``."""
    if user_vectors.dim() != 2 or item_vectors.dim() != 2 or user_vectors.shape[1] != item_vectors.shape[1]:
        raise ValueError(f"user_vectors {tuple(user_vectors.shape)} and item_vectors {tuple(item_vectors.shape)} "
                         "must be 2-D with the same width")
    items_t = item_vectors.detach().t()

    def score(users: Tensor) -> Tensor:
        return user_vectors.detach()[users.to(user_vectors.device)] @ items_t

    return score


def pair_scorer(full: Callable[[Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """Pair scorer from a full scorer: scores all items for the block's users, then gathers the candidates."""

    def score(users: Tensor, items: Tensor) -> Tensor:
        s = full(users)
        return s.gather(1, items.to(s.device))

    return score


def full_scorer(pairs: Callable[[Tensor, Tensor], Tensor], n_items: int, chunk: int = 1 << 20) -> Callable[[Tensor], Tensor]:
    """Full scorer from a pointwise model ``(users [N], items [N]) -> scores [N]`` (flat pairs), calling it on at
    most ``chunk`` pairs at a time."""
    if n_items < 1:
        raise ValueError(f"n_items: must be positive, got {n_items}")

    def score(users: Tensor) -> Tensor:
        b = users.numel()
        u = users.repeat_interleave(n_items)
        i = torch.arange(n_items, dtype=torch.long).repeat(b)
        parts = [pairs(u[s : s + chunk], i[s : s + chunk]).reshape(-1) for s in range(0, u.numel(), chunk)]
        return torch.cat(parts).reshape(b, n_items)

    return score
