"""CTR models on fastrec's fused interaction layers: FFM, xDeepFM (CIN), DCN-v2 (CrossNetV2) and DLRM
(DotInteraction)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from fastrec.features.specs import DenseFeature, Feature, SequenceFeature
from fastrec.models.ctr.models import _FieldModel
from fastrec.nn import CIN, MLP, CrossNetV2, DotInteraction, FFMInteraction
from fastrec.optim import FusedOptimizer

__all__ = ["DLRM", "FFM", "DCNv2", "xDeepFM"]


class FFM(_FieldModel):
    """Field-aware FM (Juan et al. 2016): linear part + ``sum_{i<j} <v_{i,f_j}, v_{j,f_i}>``, each field holding one
    latent vector per other field (one table of width ``F * K`` per field; dense values are fields ``x_i v_i``),
    by the fused FFM kernel.

    Args:
        features: the feature specs (sequence features are not supported).
        embed_dim: K (the tables are ``F * K`` wide).
        sparse_optimizer: fused optimizer of the tables (default lazy Adam, lr 1e-3).
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 4, *,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        if any(isinstance(f, SequenceFeature) for f in features):
            raise ValueError("FFM: sequence features are not supported")
        num_fields = sum(f.dim if isinstance(f, DenseFeature) else 1 for f in features)
        self._build(features, num_fields * embed_dim, sparse_optimizer, True, linear=True)
        self.ffm = FFMInteraction(num_fields)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        return self.linear(x) + self.ffm(self.embedding(x).fields)


class xDeepFM(_FieldModel):
    """xDeepFM (Lian et al. 2018): linear part + a Compressed Interaction Network over the field embeddings (fused
    CIN layers, split-half) + an MLP over the flattened embeddings and the dense values.

    Args:
        features: the feature specs.
        embed_dim: K.
        cin_layers: feature maps per CIN layer (all but the last even with ``split_half``).
        hidden: the MLP's hidden widths (empty: no MLP).
        split_half: CIN's split-half connections.
        dropout, batch_norm: of the MLP.
        dense_as_fields: dense values become fields ``x_i v_i`` of the CIN (default False: MLP and linear only).
        sparse_optimizer: fused optimizer of the tables (default lazy Adam, lr 1e-3).
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 10, cin_layers: Sequence[int] = (128, 128),
                 hidden: Sequence[int] = (256, 128), *, split_half: bool = True, dropout: float = 0.0,
                 batch_norm: bool = False, dense_as_fields: bool = False,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        self._build(features, embed_dim, sparse_optimizer, dense_as_fields, linear=True)
        self.cin = CIN(self.embedding.num_fields, embed_dim, cin_layers, split_half)
        self.cin_out = nn.Linear(self.cin.output_dim, 1)
        self.mlp = MLP(self.deep_dim, hidden, 1, dropout=dropout, batch_norm=batch_norm) if hidden else None

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        e = self.embedding(x)
        out = self.linear(x) + self.cin_out(self.cin(e.fields)).squeeze(1)
        return out + self.mlp(self._deep_input(e)).squeeze(1) if self.mlp is not None else out


class DCNv2(_FieldModel):
    """DCN-v2 (Wang et al. 2021): cross layers ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l`` (full rank, low rank, or a
    mixture of low-rank experts) over ``x0 = [flattened embeddings, dense values]``, and an MLP, stacked (cross then
    MLP) or in parallel (concatenated before the output layer).

    Args:
        features, embed_dim, sparse_optimizer: as in :class:`DeepFM`.
        cross_layers: cross layers.
        hidden: the MLP's hidden widths.
        low_rank, num_experts: of :class:`fastrec.nn.CrossNetV2` (None, 1: full rank).
        structure: ``"stacked"`` or ``"parallel"``.
        dropout, batch_norm: of the MLP.
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 10, cross_layers: int = 3,
                 hidden: Sequence[int] = (256, 128), *, low_rank: int | None = None, num_experts: int = 1,
                 structure: str = "stacked", dropout: float = 0.0, batch_norm: bool = False,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        if structure not in ("stacked", "parallel"):
            raise ValueError(f"DCNv2: structure must be 'stacked' or 'parallel', got {structure!r}")
        self._build(features, embed_dim, sparse_optimizer, False, linear=False)
        self.structure = structure
        self.cross = CrossNetV2(self.deep_dim, cross_layers, low_rank, num_experts)
        self.mlp = MLP(self.deep_dim, hidden, dropout=dropout, batch_norm=batch_norm)
        width = self.mlp.output_dim + (self.deep_dim if structure == "parallel" and hidden else 0)
        self.out = nn.Linear(width, 1)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        x0 = self._deep_input(self.embedding(x))
        if self.structure == "stacked":
            return self.out(self.mlp(self.cross(x0))).squeeze(1)
        deep = [self.mlp(x0)] if len(self.mlp.layers) else []
        return self.out(torch.cat([self.cross(x0), *deep], dim=1)).squeeze(1)


class DLRM(_FieldModel):
    """DLRM (Naumov et al. 2019): a bottom MLP maps the dense values to a K-vector, the fused dot interaction takes
    the pairwise dot products of it and the sparse embeddings (strict lower triangle), and a top MLP over
    ``[bottom output, dot products]`` gives the logit.

    Args:
        features: the feature specs, with at least one :class:`DenseFeature`.
        embed_dim: K.
        bottom: the bottom MLP's hidden widths (its output is K wide, ReLU throughout as in the reference).
        top: the top MLP's hidden widths (then a linear output).
        sparse_optimizer: fused optimizer of the tables (default lazy Adam, lr 1e-3).
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 16, bottom: Sequence[int] = (512, 256, 64),
                 top: Sequence[int] = (512, 256), *, sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        self._build(features, embed_dim, sparse_optimizer, False, linear=False)
        if not self.embedding.dense_dim:
            raise ValueError("DLRM: needs at least one DenseFeature (the bottom MLP's input)")
        self.bottom = MLP(self.embedding.dense_dim, (*bottom, embed_dim))
        self.interaction = DotInteraction()
        self.top = MLP(self.interaction.output_dim(len(self.embedding.field_names), embed_dim), top, 1)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        e = self.embedding(x)
        return self.top(self.interaction(self.bottom(e.dense), e.fields)).squeeze(1)
