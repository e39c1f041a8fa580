"""Feature-interaction layers: drop-in nn.Modules over fastrec.ops."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fastrec.ops import fm_interaction
from fastrec.ops.interaction import (
    CIN_ACTIVATIONS,
    cin_layer,
    dot_interaction,
    dot_interaction_dim,
    ffm_interaction,
)

__all__ = ["CIN", "BiInteraction", "CrossNetV2", "DotInteraction", "FFMInteraction", "FMInteraction"]


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


class CIN(nn.Module):
    """xDeepFM's Compressed Interaction Network (Lian et al., KDD 2018), ``[B, F, K] -> [B, output_dim]``.

    Layer k computes ``X^k[b, h, d] = act(sum_{i, j} W^k[h, i, j] * X^{k-1}[b, i, d] * X^0[b, j, d] + b^k[h])`` and
    contributes its feature maps summed over d. Each layer is one fused op (:func:`fastrec.ops.cin_layer`) that never
    stores the ``[B, H, F, K]`` outer-product tensor the published implementations build.

    ``split_half`` (default, as in the paper): every layer but the last keeps half of its ``H_k`` maps for the next
    layer and pools the other half. Implementations disagree on which half is which; fastrec follows the xDeepFM
    authors' code and DeepCTR-Torch: the **first** half feeds the next layer, the **second** is pooled. pytorch-fm
    pools the first half; :meth:`load_torchfm_weights` and :meth:`torchfm_weights` convert between the two.

    Args:
        num_fields: F, fields of the input.
        embed_dim: K, their embedding dim.
        layer_sizes: ``H_k`` of each layer; with ``split_half``, all but the last must be even.
        split_half: see above.
        activation: ``"relu"`` (default), ``"identity"`` (``"linear"``), ``"sigmoid"`` or ``"tanh"``.

    Attributes: ``output_dim`` (the width of the output), ``weights`` (``[H_k, H_{k-1}, F]`` each), ``biases``
    (``[H_k]`` each). Weights are initialized like the 1x1 ``Conv1d`` of the published code (uniform in
    ``+-1/sqrt(H_{k-1} F)``).
    """

    def __init__(
        self,
        num_fields: int,
        embed_dim: int,
        layer_sizes: Sequence[int] = (128, 128),
        split_half: bool = True,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if num_fields < 1 or embed_dim < 1:
            raise ValueError(f"CIN: num_fields and embed_dim must be >= 1, got {num_fields} and {embed_dim}")
        layer_sizes = tuple(int(h) for h in layer_sizes)
        if not layer_sizes or min(layer_sizes) < 1:
            raise ValueError(f"CIN: layer_sizes must be a non-empty sequence of positive ints, got {layer_sizes}")
        if split_half and any(h % 2 for h in layer_sizes[:-1]):
            raise ValueError(
                f"CIN: with split_half=True every layer size but the last must be even, got layer_sizes={layer_sizes}"
            )
        if activation not in CIN_ACTIVATIONS:
            raise ValueError(f"CIN: activation must be one of {CIN_ACTIVATIONS}, got {activation!r}")
        self.num_fields, self.embed_dim = num_fields, embed_dim
        self.layer_sizes, self.split_half, self.activation = layer_sizes, split_half, activation
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        hidden_in, self.output_dim = num_fields, 0
        for k, hidden in enumerate(layer_sizes):
            self.weights.append(nn.Parameter(torch.empty(hidden, hidden_in, num_fields)))
            self.biases.append(nn.Parameter(torch.empty(hidden)))
            kept = hidden // 2 if self._splits(k) else hidden
            self.output_dim += hidden - kept if self._splits(k) else hidden
            hidden_in = kept
        self.reset_parameters()

    def _splits(self, layer: int) -> bool:
        return self.split_half and layer < len(self.layer_sizes) - 1

    def reset_parameters(self) -> None:
        for weight, bias in zip(self.weights, self.biases):
            bound = 1.0 / math.sqrt(weight.shape[1] * weight.shape[2])
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1:] != (self.num_fields, self.embed_dim):
            raise ValueError(
                f"CIN: x must have shape [batch, num_fields={self.num_fields}, embed_dim={self.embed_dim}], "
                f"got {list(x.shape)}"
            )
        x0 = x.transpose(1, 2).contiguous()  # [B, K, F]: each (b, d) a row of the layers' matrix products
        hidden, pooled = None, []  # None: the first layer crosses x0 with itself
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            out = cin_layer(hidden, x0, weight, bias, self.activation)  # [B, K, H_k]
            if self._splits(k):
                half = out.shape[2] // 2
                hidden, out = out[:, :, :half], out[:, :, half:]
            else:
                hidden = out
            pooled.append(out.sum(dim=1))
        return torch.cat(pooled, dim=1)

    @torch.no_grad()
    def torchfm_weights(self) -> list[tuple[Tensor, Tensor]]:
        """The ``(weight [H_k, F * H_{k-1}, 1], bias [H_k])`` of pytorch-fm's ``CompressedInteractionNetwork``
        ``conv_layers`` that compute the same function (its pooled output before its ``fc`` equals this module's)."""
        return [(w[self._torchfm_order(k)].permute(0, 2, 1).reshape(w.shape[0], -1, 1).clone(),
                 b[self._torchfm_order(k)].clone()) for k, (w, b) in enumerate(zip(self.weights, self.biases))]

    @torch.no_grad()
    def load_torchfm_weights(self, layers: Sequence[tuple[Tensor, Tensor]]) -> None:
        """Loads pytorch-fm's ``conv_layers`` weights, given as ``[(conv.weight, conv.bias), ...]``."""
        if len(layers) != len(self.weights):
            raise ValueError(f"CIN.load_torchfm_weights: expected {len(self.weights)} layers, got {len(layers)}")
        for k, ((conv_w, conv_b), w, b) in enumerate(zip(layers, self.weights, self.biases)):
            hidden, hidden_in, fields = w.shape
            if conv_w.shape != (hidden, fields * hidden_in, 1) or conv_b.shape != (hidden,):
                raise ValueError(
                    f"CIN.load_torchfm_weights: layer {k} must be ([{hidden}, {fields * hidden_in}, 1], [{hidden}]), "
                    f"got ({list(conv_w.shape)}, {list(conv_b.shape)})"
                )
            inverse = torch.argsort(self._torchfm_order(k))
            w.copy_(conv_w.view(hidden, fields, hidden_in).permute(0, 2, 1)[inverse])
            b.copy_(conv_b[inverse])

    def _torchfm_order(self, layer: int) -> Tensor:
        # pytorch-fm's channel c is fastrec's channel order[c]: the two halves swapped where the layer splits.
        hidden = self.layer_sizes[layer]
        order = torch.arange(hidden)
        return order.roll(hidden // 2) if self._splits(layer) else order

    def extra_repr(self) -> str:
        return (f"num_fields={self.num_fields}, embed_dim={self.embed_dim}, layer_sizes={self.layer_sizes}, "
                f"split_half={self.split_half}, activation={self.activation!r}, output_dim={self.output_dim}")


class FFMInteraction(nn.Module):
    """Field-aware FM's pairwise term, ``[B, F, F, K] -> [B]`` (or ``[B, F * (F - 1) / 2]`` per pair).

    Input layout: ``x[b, i, j]`` is field i's latent vector for field j, so the term is
    ``sum_{i<j} <x[b, i, j], x[b, j, i]> * v_i * v_j``. An :class:`~fastrec.nn.EmbeddingBagCollection` with one
    table of dim ``F * K`` per field returns ``[B, F, F * K]``; pass it as it is (a 3-D ``[B, F, F * K]`` input is
    viewed as ``[B, F, F, K]``). See :func:`fastrec.ops.ffm_interaction`.

    Args:
        num_fields: F.
        reduce: sum over pairs (``[B]``) or return each pair's term (``[B, F * (F - 1) / 2]``, pairs i < j in
            row-major order, e.g. for field-weighted FMs).
        keepdim: with ``reduce``, return ``[B, 1]``.
    """

    def __init__(self, num_fields: int, reduce: bool = True, keepdim: bool = False) -> None:
        super().__init__()
        if num_fields < 1:
            raise ValueError(f"FFMInteraction: num_fields must be >= 1, got {num_fields}")
        self.num_fields, self.reduce, self.keepdim = num_fields, reduce, keepdim

    @property
    def output_dim(self) -> int:
        return 1 if self.reduce else self.num_fields * (self.num_fields - 1) // 2

    def forward(self, x: Tensor, values: Tensor | None = None) -> Tensor:
        f = self.num_fields
        if x.dim() == 3 and x.shape[1] == f and x.shape[2] % f == 0:
            x = x.view(x.shape[0], f, f, x.shape[2] // f)
        if x.dim() != 4 or x.shape[1] != f or x.shape[2] != f:
            raise ValueError(
                f"FFMInteraction: x must be [batch, num_fields={f}, num_fields={f}, embed_dim] or "
                f"[batch, {f}, {f} * embed_dim], got {list(x.shape)}"
            )
        out = ffm_interaction(x, values, self.reduce)
        return out.unsqueeze(1) if self.reduce and self.keepdim else out

    def extra_repr(self) -> str:
        return f"num_fields={self.num_fields}, reduce={self.reduce}, keepdim={self.keepdim}"


class DotInteraction(nn.Module):
    """DLRM's dot interaction, ``(dense [B, D], sparse [B, S, D]) -> [B, D + (S + 1) S / 2]``.

    The pairwise dot products of ``[dense, sparse_1, ..., sparse_S]`` (lower triangle, strict unless
    ``self_interaction``, ordered as DLRM's reference), after ``dense`` when ``concat_dense``.
    See :func:`fastrec.ops.dot_interaction`; :meth:`output_dim` gives the width.
    """

    def __init__(self, self_interaction: bool = False, concat_dense: bool = True) -> None:
        super().__init__()
        self.self_interaction, self.concat_dense = self_interaction, concat_dense

    def output_dim(self, num_sparse: int, dim: int) -> int:
        """The output width for ``num_sparse`` embeddings of dim ``dim``."""
        return dot_interaction_dim(num_sparse, dim, self.self_interaction, self.concat_dense)

    def forward(self, dense: Tensor, sparse: Tensor) -> Tensor:
        return dot_interaction(dense, sparse, self.self_interaction, self.concat_dense)

    def extra_repr(self) -> str:
        return f"self_interaction={self.self_interaction}, concat_dense={self.concat_dense}"


class CrossNetV2(nn.Module):
    """DCN-v2's cross network (Wang et al., WWW 2021), ``[B, D] -> [B, D]``.

    - full rank (``low_rank=None``): ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l``, ``W_l`` ``[D, D]``;
    - low rank (``low_rank=r``): ``W_l = U_l V_l^T`` with ``U_l, V_l`` ``[D, r]``;
    - mixture of low-rank experts (``num_experts > 1``, needs ``low_rank``; DCN-Mix as in the paper's code and
      DeepCTR-Torch's ``CrossNetMix``): ``x_{l+1} = sum_e softmax_e(g_e^T x_l) * x_0 * (U_le tanh(C_le tanh(V_le^T
      x_l))) + b_l) + x_l``, ``C_le`` ``[r, r]``, the gates ``g_e`` shared by all layers.

    Plain torch: each layer is one or two matrix products that the BLAS already runs at full speed; a fused kernel
    would only save the elementwise tail (measured in the benchmarks).

    Args:
        input_dim: D.
        num_layers: number of cross layers.
        low_rank: rank r of the factorized weights, or None for full rank.
        num_experts: experts per layer (DCN-Mix when > 1).
    """

    def __init__(self, input_dim: int, num_layers: int, low_rank: int | None = None, num_experts: int = 1) -> None:
        super().__init__()
        if input_dim < 1 or num_layers < 0:
            raise ValueError(f"CrossNetV2: input_dim must be >= 1 and num_layers >= 0, got {input_dim}, {num_layers}")
        if low_rank is not None and low_rank < 1:
            raise ValueError(f"CrossNetV2: low_rank must be None or >= 1, got {low_rank}")
        if num_experts < 1:
            raise ValueError(f"CrossNetV2: num_experts must be >= 1, got {num_experts}")
        if num_experts > 1 and low_rank is None:
            raise ValueError("CrossNetV2: num_experts > 1 (DCN-Mix) needs low_rank")
        self.input_dim, self.num_layers, self.low_rank, self.num_experts = input_dim, num_layers, low_rank, num_experts
        self.output_dim = input_dim
        self.bias = nn.Parameter(torch.zeros(num_layers, input_dim))
        if low_rank is None:
            self.kernels = nn.Parameter(torch.empty(num_layers, input_dim, input_dim))
        elif num_experts == 1:
            self.U = nn.Parameter(torch.empty(num_layers, input_dim, low_rank))
            self.V = nn.Parameter(torch.empty(num_layers, input_dim, low_rank))
        else:
            self.U = nn.Parameter(torch.empty(num_layers, num_experts, input_dim, low_rank))
            self.V = nn.Parameter(torch.empty(num_layers, num_experts, input_dim, low_rank))
            self.C = nn.Parameter(torch.empty(num_layers, num_experts, low_rank, low_rank))
            self.gates = nn.Parameter(torch.empty(num_experts, input_dim))  # shared by the layers, as published
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal weights and zero biases, as DCN-v2's reference code."""
        nn.init.zeros_(self.bias)
        for name, param in self.named_parameters():
            if name != "bias":
                for matrix in param.view(-1, *param.shape[-2:]):
                    nn.init.xavier_normal_(matrix)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"CrossNetV2: x must have shape [batch, input_dim={self.input_dim}], got {list(x.shape)}")
        x0, xl = x, x
        for layer in range(self.num_layers):
            if self.low_rank is None:
                xl = torch.addmm(self.bias[layer], xl, self.kernels[layer].t()) * x0 + xl
            elif self.num_experts == 1:
                xl = torch.addmm(self.bias[layer], xl @ self.V[layer], self.U[layer].t()) * x0 + xl
            else:
                xl = self._mixture(layer, x0, xl)
        return xl

    def _mixture(self, layer: int, x0: Tensor, xl: Tensor) -> Tensor:
        projected = torch.tanh(torch.einsum("bd,edr->ebr", xl, self.V[layer]))
        projected = torch.tanh(torch.einsum("ebr,eqr->ebq", projected, self.C[layer]))
        experts = (torch.einsum("ebr,edr->ebd", projected, self.U[layer]) + self.bias[layer]) * x0  # [E, B, D]
        gates = torch.softmax(xl @ self.gates.t(), dim=1)  # [B, E]
        return torch.einsum("ebd,be->bd", experts, gates) + xl

    def extra_repr(self) -> str:
        return (f"input_dim={self.input_dim}, num_layers={self.num_layers}, low_rank={self.low_rank}, "
                f"num_experts={self.num_experts}")
