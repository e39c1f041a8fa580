"""Dense building blocks of the ranking models: MLP towers, DCN's cross network, DIN's target attention,
AFM's attentional pairwise pooling and the multi-gate mixture of experts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLP", "AttentionalPairPooling", "CrossNet", "Dice", "MixtureOfExperts", "TargetAttention"]

_ACTIVATIONS = {"relu": nn.ReLU, "prelu": nn.PReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
                "dice": None}


class Dice(nn.Module):
    """DIN's data-adaptive activation: p(x) * x + (1 - p(x)) * alpha * x, p = sigmoid(batch-normalized x)."""

    def __init__(self, dim: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, eps=eps, affine=False)
        self.alpha = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        p = torch.sigmoid(self.bn(flat)) if flat.shape[0] > 1 or not self.training else torch.sigmoid(flat)
        return (p * flat + (1 - p) * self.alpha * flat).view(shape)


class _PReLU(nn.PReLU):
    """PReLU with one slope per unit of the last dimension, for inputs of any rank."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).view(x.shape)


def _activation(name: str, dim: int) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    if name == "dice":
        return Dice(dim)
    return _PReLU(dim) if name == "prelu" else _ACTIVATIONS[name]()


class MLP(nn.Module):
    """Linear -> [BatchNorm] -> activation -> [Dropout] per hidden layer, then an optional output layer.

    Args:
        input_dim: input width.
        hidden: hidden layer widths (may be empty).
        output_dim: width of a final linear layer without activation (None: the last hidden layer is the output).
        activation: relu, prelu, dice, sigmoid, tanh or gelu.
        dropout: dropout probability after each hidden activation.
        batch_norm: batch normalization before each hidden activation.
    """

    def __init__(self, input_dim: int, hidden: Sequence[int] = (), output_dim: int | None = None, *,
                 activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = input_dim
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(_activation(activation, h))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        if output_dim is not None:
            layers.append(nn.Linear(width, output_dim))
            width = output_dim
        self.layers = nn.Sequential(*layers)
        self.output_dim = width

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class CrossNet(nn.Module):
    """DCN's cross network (Wang et al. 2017): ``x_{l+1} = x_0 * (x_l . w_l) + b_l + x_l``, ``num_layers`` times.
    O(d) parameters per layer; ``[B, d] -> [B, d]``. (DCN-v2's full-rank cross is :class:`fastrec.nn.CrossNetV2`.)"""

    def __init__(self, input_dim: int, num_layers: int = 3) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.empty(num_layers, input_dim))
        self.biases = nn.Parameter(torch.zeros(num_layers, input_dim))
        nn.init.xavier_normal_(self.weights)

    def forward(self, x0: Tensor) -> Tensor:
        x = x0
        for w, b in zip(self.weights, self.biases):
            x = x0 * (x @ w).unsqueeze(1) + b + x
        return x


class TargetAttention(nn.Module):
    """DIN's local activation unit: weights each behaviour by an MLP over ``[q, k, q - k, q * k]`` (no softmax, as in
    the paper) and sums them; padded positions (``mask`` False) get weight 0. ``query [B, D], keys [B, L, D],
    mask [B, L] -> [B, D]``."""

    def __init__(self, embed_dim: int, hidden: Sequence[int] = (80, 40), activation: str = "dice") -> None:
        super().__init__()
        self.score = MLP(4 * embed_dim, hidden, 1, activation=activation)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor) -> Tensor:
        q = query.unsqueeze(1).expand_as(keys)
        w = self.score(torch.cat([q, keys, q - keys, q * keys], dim=-1)).squeeze(-1)  # [B, L]
        w = w * mask.to(w.dtype)
        return torch.bmm(w.unsqueeze(1), keys).squeeze(1)


class AttentionalPairPooling(nn.Module):
    """AFM's attention-based pooling of the pairwise element-wise products ``e_i * e_j`` (i < j):
    ``[B, F, K] -> [B, K]``, weights softmax(h^T relu(W (e_i * e_j) + b)) over the pairs."""

    def __init__(self, num_fields: int, embed_dim: int, attention_dim: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.attention = nn.Sequential(nn.Linear(embed_dim, attention_dim), nn.ReLU(), nn.Linear(attention_dim, 1,
                                                                                                 bias=False))
        self.dropout = nn.Dropout(dropout)

    def forward(self, emb: Tensor) -> Tensor:
        pairs = emb[:, self.rows] * emb[:, self.cols]  # [B, P, K]
        weights = torch.softmax(self.attention(pairs), dim=1)  # [B, P, 1]
        return self.dropout((weights * pairs).sum(dim=1))


class MixtureOfExperts(nn.Module):
    """MMoE's shared experts with one softmax gate per task (Ma et al. 2018): ``[B, d] -> list of T [B, expert_dim]``.
    With ``num_experts=1`` and no gates it is the shared-bottom model."""

    def __init__(self, input_dim: int, num_tasks: int, num_experts: int = 4, expert_hidden: Sequence[int] = (64,),
                 *, dropout: float = 0.0) -> None:
        super().__init__()
        if num_experts < 1 or num_tasks < 1:
            raise ValueError(f"MixtureOfExperts: num_experts and num_tasks must be >= 1, got {num_experts}, "
                             f"{num_tasks}")
        self.experts = nn.ModuleList(MLP(input_dim, expert_hidden, dropout=dropout) for _ in range(num_experts))
        self.gates = nn.ModuleList(nn.Linear(input_dim, num_experts) for _ in range(num_tasks)) \
            if num_experts > 1 else None
        self.num_tasks = num_tasks
        self.output_dim = self.experts[0].output_dim

    def forward(self, x: Tensor) -> list[Tensor]:
        experts = torch.stack([e(x) for e in self.experts], dim=1)  # [B, E, H]
        if self.gates is None:
            return [experts[:, 0]] * self.num_tasks
        return [torch.bmm(torch.softmax(g(x), dim=-1).unsqueeze(1), experts).squeeze(1) for g in self.gates]
