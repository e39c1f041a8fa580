"""CTR ranking models over field embeddings: LR, FM, DeepFM, NFM, AFM, Wide & Deep, DCN and AutoInt.

Every model takes the feature specs (``Preprocessor.features``), an embedding width and a fused sparse optimizer for
its tables, and maps a batch (dict feature name -> tensor) to logits ``[B]``. Dense features go into the deep part's
input (and the linear part) unless ``dense_as_fields`` makes each one a field ``x_i * v_i``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from fastrec.features.specs import Feature
from fastrec.models.ctr.base import CTRModel, Embedded, FeatureEmbedding, FeaturesLinear, default_sparse_optimizer
from fastrec.nn import MLP, AttentionalPairPooling, BiInteraction, CrossNet, FMInteraction
from fastrec.optim import FusedOptimizer

__all__ = ["AFM", "DCN", "FM", "LR", "NFM", "AutoInt", "DeepFM", "WideDeep"]


class _FieldModel(CTRModel):
    """Shared construction: a :class:`FeatureEmbedding` (``self.embedding``) and, with ``linear``, a
    :class:`FeaturesLinear` (``self.linear``), both updated by one fused optimizer instance."""

    def _build(self, features: Sequence[Feature], embed_dim: int, sparse_optimizer: FusedOptimizer | None,
               dense_as_fields: bool, linear: bool) -> None:
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"{type(self).__name__}: embed_dim must be an int >= 1, got {embed_dim!r}")
        opt = sparse_optimizer if sparse_optimizer is not None else default_sparse_optimizer()
        self.features = list(features)
        self.embedding = FeatureEmbedding(features, embed_dim, opt, dense_as_fields=dense_as_fields)
        self.linear = FeaturesLinear(features, opt) if linear else None
        self.deep_dim = self.embedding.num_fields * embed_dim + (
            0 if self.embedding.dense_embedding is not None else self.embedding.dense_dim)

    def _deep_input(self, e: Embedded) -> Tensor:
        flat = e.fields.flatten(1)
        return flat if e.dense is None or self.embedding.dense_embedding is not None else torch.cat([flat, e.dense], 1)


class LR(_FieldModel):
    """Logistic regression: ``b + sum_f w_f[id_f] + <w, x_dense>``.

    Args:
        features: the feature specs.
        sparse_optimizer: fused optimizer of the weight tables (default lazy Adam, lr 1e-3).
    """

    def __init__(self, features: Sequence[Feature], sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        opt = sparse_optimizer if sparse_optimizer is not None else default_sparse_optimizer()
        self.features = list(features)
        self.linear = FeaturesLinear(features, opt)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        return self.linear(x)


class FM(_FieldModel):
    """Factorization machine (Rendle 2010): linear part + ``sum_{i<j} <v_i, v_j>`` over the fields, by the fused
    FM kernel.

    Args:
        features: the feature specs.
        embed_dim: K.
        dense_as_fields: dense values enter the pairwise term as ``x_i v_i`` (Rendle's FM; default True).
        sparse_optimizer: fused optimizer of the tables (default lazy Adam, lr 1e-3).
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 10, *, dense_as_fields: bool = True,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        self._build(features, embed_dim, sparse_optimizer, dense_as_fields, linear=True)
        self.fm = FMInteraction()

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        return self.linear(x) + self.fm(self.embedding(x).fields)


class DeepFM(_FieldModel):
    """DeepFM (Guo et al. 2017): FM (linear + pairwise) plus an MLP over the concatenated field embeddings, sharing
    the embeddings.

    Args:
        features: the feature specs.
        embed_dim: K.
        hidden: the MLP's hidden widths.
        dropout, batch_norm, activation: of the MLP.
        dense_as_fields: dense values become FM fields ``x_i v_i`` (default False: they go to the MLP only).
        sparse_optimizer: fused optimizer of the tables (default lazy Adam, lr 1e-3).
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 10, hidden: Sequence[int] = (256, 128, 64), *,
                 dropout: float = 0.0, batch_norm: bool = False, activation: str = "relu",
                 dense_as_fields: bool = False, sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        self._build(features, embed_dim, sparse_optimizer, dense_as_fields, linear=True)
        self.fm = FMInteraction()
        self.mlp = MLP(self.deep_dim, hidden, 1, activation=activation, dropout=dropout, batch_norm=batch_norm)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        e = self.embedding(x)
        return self.linear(x) + self.fm(e.fields) + self.mlp(self._deep_input(e)).squeeze(1)


class NFM(_FieldModel):
    """Neural FM (He & Chua 2017): linear part + an MLP over the bi-interaction pooling
    ``0.5 ((sum v)^2 - sum v^2)`` (fused kernel), batch-normalized and dropped out as in the paper.

    Args:
        features, embed_dim, sparse_optimizer: as in :class:`FM` (dense values are fields).
        hidden: the MLP's hidden widths.
        dropout: after the bi-interaction and after each hidden layer.
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 10, hidden: Sequence[int] = (64,), *,
                 dropout: float = 0.2, sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        self._build(features, embed_dim, sparse_optimizer, True, linear=True)
        self.bi = BiInteraction()
        self.bn = nn.BatchNorm1d(embed_dim)
        self.drop = nn.Dropout(dropout)
        self.mlp = MLP(embed_dim, hidden, 1, dropout=dropout)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        pooled = self.drop(self.bn(self.bi(self.embedding(x).fields)))
        return self.linear(x) + self.mlp(pooled).squeeze(1)


class AFM(_FieldModel):
    """Attentional FM (Xiao et al. 2017): linear part + ``p^T sum_{i<j} a_ij (v_i * v_j)`` with attention weights
    ``a_ij`` from a one-layer network.

    Args:
        features, embed_dim, sparse_optimizer: as in :class:`FM` (dense values are fields).
        attention_dim: the attention network's width.
        dropout: on the pooled vector.
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 10, attention_dim: int = 16, *,
                 dropout: float = 0.0, sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        self._build(features, embed_dim, sparse_optimizer, True, linear=True)
        self.pooling = AttentionalPairPooling(self.embedding.num_fields, embed_dim, attention_dim, dropout)
        self.project = nn.Linear(embed_dim, 1, bias=False)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        return self.linear(x) + self.project(self.pooling(self.embedding(x).fields)).squeeze(1)


class WideDeep(_FieldModel):
    """Wide & Deep (Cheng et al. 2016): a wide linear model over all sparse features (cross features included) plus
    an MLP over the embeddings of the deep features and the dense values.

    Args:
        features: the feature specs.
        embed_dim: K.
        hidden: the MLP's hidden widths.
        wide_only: names of features used by the wide part only (e.g. :class:`fastrec.features.Cross` outputs).
        dropout, batch_norm: of the MLP.
        sparse_optimizer: fused optimizer of the tables (default lazy Adam, lr 1e-3).
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 10, hidden: Sequence[int] = (256, 128, 64), *,
                 wide_only: Sequence[str] = (), dropout: float = 0.0, batch_norm: bool = False,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        names = {f.name for f in features}
        unknown = [n for n in wide_only if n not in names]
        if unknown:
            raise KeyError(f"WideDeep: wide_only names unknown features {unknown}; features: {sorted(names)}")
        deep = [f for f in features if f.name not in set(wide_only)]
        self._build(deep, embed_dim, sparse_optimizer, False, linear=False)
        opt = self.embedding.ebc.optimizer if self.embedding.ebc is not None else sparse_optimizer
        self.linear = FeaturesLinear(features, opt)
        self.mlp = MLP(self.deep_dim, hidden, 1, dropout=dropout, batch_norm=batch_norm)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        return self.linear(x) + self.mlp(self._deep_input(self.embedding(x))).squeeze(1)


class DCN(_FieldModel):
    """Deep & Cross Network (Wang et al. 2017): a cross network and an MLP side by side over
    ``x0 = [flattened embeddings, dense values]``, combined by a linear layer.

    Args:
        features, embed_dim, sparse_optimizer: as in :class:`DeepFM`.
        cross_layers: layers of the cross network.
        hidden: the MLP's hidden widths (empty: cross network only).
        dropout, batch_norm: of the MLP.
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 10, cross_layers: int = 3,
                 hidden: Sequence[int] = (256, 128, 64), *, dropout: float = 0.0, batch_norm: bool = False,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        self._build(features, embed_dim, sparse_optimizer, False, linear=False)
        self.cross = CrossNet(self.deep_dim, cross_layers)
        self.mlp = MLP(self.deep_dim, hidden, dropout=dropout, batch_norm=batch_norm)
        self.out = nn.Linear(self.deep_dim + self.mlp.output_dim if hidden else self.deep_dim, 1)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        x0 = self._deep_input(self.embedding(x))
        parts = [self.cross(x0), self.mlp(x0)] if len(self.mlp.layers) else [self.cross(x0)]
        return self.out(torch.cat(parts, dim=1)).squeeze(1)


class _InteractingLayer(nn.Module):
    """AutoInt's multi-head self-attention over fields with a residual projection and ReLU."""

    def __init__(self, input_dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(input_dim, 3 * heads * head_dim, bias=False)
        self.residual = nn.Linear(input_dim, heads * head_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, fields, _ = x.shape
        q, k, v = self.qkv(x).view(batch, fields, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        att = nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0)  # the paper's unscaled dot product
        out = att.transpose(1, 2).reshape(batch, fields, self.heads * self.head_dim)
        return torch.relu(out + self.residual(x))


class AutoInt(_FieldModel):
    """AutoInt (Song et al. 2019): stacked multi-head self-attention over the field embeddings, flattened into a
    logit, plus (with ``hidden``) an MLP over the embeddings (AutoInt+).

    Args:
        features, embed_dim, sparse_optimizer: as in :class:`FM` (dense values are fields, as in the paper).
        attention_layers, heads, head_dim: the interacting layers.
        hidden: the MLP's hidden widths (empty: plain AutoInt).
        dropout: of the MLP.
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 10, attention_layers: int = 3, heads: int = 2,
                 head_dim: int = 16, hidden: Sequence[int] = (), *, dropout: float = 0.0,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        self._build(features, embed_dim, sparse_optimizer, True, linear=False)
        dims = [embed_dim] + [heads * head_dim] * attention_layers
        self.attention = nn.Sequential(*(_InteractingLayer(d, heads, head_dim) for d in dims[:-1]))
        self.out = nn.Linear(self.embedding.num_fields * dims[-1], 1)
        self.mlp = MLP(self.deep_dim, hidden, 1, dropout=dropout) if hidden else None

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        e = self.embedding(x)
        logit = self.out(self.attention(e.fields).flatten(1)).squeeze(1)
        return logit + self.mlp(self._deep_input(e)).squeeze(1) if self.mlp is not None else logit
