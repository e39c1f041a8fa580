"""Plain-torch implementations of every fastrec op: the ground truth the kernels are tested against, and the
fallback that runs where no kernel exists (extension not built, or a device without a kernel).

They are written for clarity, composed from standard torch ops so that autograd differentiates them.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["fm_interaction", "fm_interaction_pairwise"]


def _weighted(emb: Tensor, values: Tensor | None) -> Tensor:
    return emb if values is None else emb * values.unsqueeze(-1)


def fm_interaction(emb: Tensor, values: Tensor | None = None, reduce: bool = True) -> Tensor:
    """Rendle's O(FK) form: 0.5 * ((sum_f x_f)^2 - sum_f x_f^2), x_f = v_f e_f; summed over K when reduce."""
    x = _weighted(emb, values)
    bi_interaction = 0.5 * (x.sum(dim=1).square() - x.square().sum(dim=1))
    return bi_interaction.sum(dim=1) if reduce else bi_interaction


def fm_interaction_pairwise(emb: Tensor, values: Tensor | None = None, reduce: bool = True) -> Tensor:
    """The definition, O(F^2 K): sum over field pairs i < j of x_i * x_j (elementwise), summed over K when reduce."""
    x = _weighted(emb, values)
    first, second = torch.triu_indices(x.shape[1], x.shape[1], offset=1, device=x.device)
    bi_interaction = (x[:, first] * x[:, second]).sum(dim=1)
    return bi_interaction.sum(dim=1) if reduce else bi_interaction
