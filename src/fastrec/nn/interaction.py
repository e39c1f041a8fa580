"""Feature-interaction layers: drop-in nn.Modules over fastrec.ops."""

from __future__ import annotations

from torch import Tensor, nn

from fastrec.ops import fm_interaction

__all__ = ["BiInteraction", "FMInteraction"]


class FMInteraction(nn.Module):
    """The factorization machine's second-order term, ``[B, F, K] -> [B]`` (or ``[B, 1]`` with ``keepdim``).

    Equals the sum over field pairs i < j of ``<v_i e_i, v_j e_j>``, computed in O(F K) per row by the fused kernel
    (:func:`fastrec.ops.fm_interaction`). Pass ``values`` ``[B, F]`` for numeric fields or weighted multi-hot bags.
    """

    def __init__(self, keepdim: bool = False) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, emb: Tensor, values: Tensor | None = None) -> Tensor:
        out = fm_interaction(emb, values, reduce=True)
        return out.unsqueeze(1) if self.keepdim else out

    def extra_repr(self) -> str:
        return f"keepdim={self.keepdim}"


class BiInteraction(nn.Module):
    """NFM's bi-interaction pooling, ``[B, F, K] -> [B, K]``: ``0.5 * ((sum_f x_f)^2 - sum_f x_f^2)``, x_f = v_f e_f."""

    def forward(self, emb: Tensor, values: Tensor | None = None) -> Tensor:
        return fm_interaction(emb, values, reduce=False)
