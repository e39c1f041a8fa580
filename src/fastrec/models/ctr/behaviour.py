"""Models of a user's behaviour sequence w.r.t. the candidate item (DIN, BST) and multi-task models (shared-bottom,
MMoE)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from fastrec.features.specs import Feature, SequenceFeature, SparseFeature
from fastrec.models.ctr.models import _FieldModel
from fastrec.nn import MLP, MixtureOfExperts, TargetAttention
from fastrec.optim import FusedOptimizer

__all__ = ["BST", "DIN", "MMoE", "SharedBottom"]


def _behaviour_pairs(model: str, features: Sequence[Feature], behaviours: Mapping[str, str] | None) -> dict[str, str]:
    """sequence feature -> candidate feature; by default each sequence pairs with the sparse feature of its table."""
    by_name = {f.name: f for f in features}
    sequences = [f for f in features if isinstance(f, SequenceFeature)]
    if not sequences:
        raise ValueError(f"{model}: needs at least one SequenceFeature (the behaviour sequence)")
    if behaviours is None:
        behaviours = {}
        for s in sequences:
            match = [f.name for f in features if isinstance(f, SparseFeature) and f.table_name == s.table_name]
            if len(match) != 1:
                raise ValueError(f"{model}: sequence {s.name!r} (table {s.table_name!r}) needs exactly one sparse "
                                 f"candidate feature on the same table, found {match}; pass behaviours= explicitly")
            behaviours[s.name] = match[0]
    pairs = dict(behaviours)
    for seq, cand in pairs.items():
        if not isinstance(by_name.get(seq), SequenceFeature) or not isinstance(by_name.get(cand), SparseFeature):
            raise TypeError(f"{model}: behaviours must map SequenceFeature names to SparseFeature names, got "
                             f"{seq!r} -> {cand!r}")
    return pairs


class DIN(_FieldModel):
    """Deep Interest Network (Zhou et al. 2018): each behaviour sequence is pooled by attention weights computed
    against the candidate item (padding masked out), then an MLP over [fields, pooled sequences, dense values].

    Args:
        features: the feature specs, with at least one :class:`SequenceFeature` sharing a table with a candidate
            :class:`SparseFeature` (e.g. ``Sequence("history", 50, vocabulary="item_id")``).
        embed_dim: K.
        behaviours: sequence feature -> candidate feature (default: matched by shared table).
        attention_hidden: the activation unit's widths.
        hidden: the MLP's hidden widths.
        activation: of the MLP and the attention unit (``"dice"`` as in the paper, or ``"prelu"``, ``"relu"``).
        dropout: of the MLP.
        sparse_optimizer: fused optimizer of the tables (default lazy Adam, lr 1e-3).
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 10, behaviours: Mapping[str, str] | None = None,
                 attention_hidden: Sequence[int] = (80, 40), hidden: Sequence[int] = (200, 80), *,
                 activation: str = "dice", dropout: float = 0.0,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        self.pairs = _behaviour_pairs("DIN", features, behaviours)
        self._build(features, embed_dim, sparse_optimizer, False, linear=False)
        self._candidate = {s: self.embedding.field_names.index(c) for s, c in self.pairs.items()}
        self.attention = nn.ModuleDict({s: TargetAttention(embed_dim, attention_hidden, activation)
                                        for s in self.pairs})
        self.mlp = MLP(self.deep_dim + len(self.pairs) * embed_dim, hidden, 1, activation=activation,
                       dropout=dropout)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        e = self.embedding(x)
        pooled = [self.attention[s](e.fields[:, self._candidate[s]], *e.sequences[s]) for s in self.pairs]
        return self.mlp(torch.cat([self._deep_input(e), *pooled], dim=1)).squeeze(1)


class BST(_FieldModel):
    """Behaviour Sequence Transformer (Chen et al. 2019): the behaviour sequence with the candidate item appended,
    plus learned position embeddings, through Transformer encoder layers (padding masked); the outputs of all
    positions (zero at padding) are concatenated with the other fields and the dense values into an MLP.

    Args:
        features: as in :class:`DIN`.
        embed_dim: K (divisible by ``heads``).
        behaviours: sequence feature -> candidate feature (default: matched by shared table).
        num_layers, heads, dropout: of the Transformer (feed-forward width ``4 K``).
        hidden: the MLP's hidden widths.
        sparse_optimizer: fused optimizer of the tables (default lazy Adam, lr 1e-3).
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int = 16, behaviours: Mapping[str, str] | None = None,
                 num_layers: int = 1, heads: int = 2, hidden: Sequence[int] = (256, 128), *, dropout: float = 0.1,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        if embed_dim % heads:
            raise ValueError(f"BST: embed_dim ({embed_dim}) must be divisible by heads ({heads})")
        self.pairs = _behaviour_pairs("BST", features, behaviours)
        self._build(features, embed_dim, sparse_optimizer, False, linear=False)
        self._candidate = {s: self.embedding.field_names.index(c) for s, c in self.pairs.items()}
        lengths = {f.name: f.max_len + 1 for f in features if f.name in self.pairs}
        self.positions = nn.ParameterDict({s: nn.Parameter(torch.randn(n, embed_dim) * 0.01)
                                           for s, n in lengths.items()})
        self.encoders = nn.ModuleDict({
            s: nn.TransformerEncoder(nn.TransformerEncoderLayer(embed_dim, heads, 4 * embed_dim, dropout,
                                                                batch_first=True), num_layers,
                                     enable_nested_tensor=False)
            for s in self.pairs})
        self.mlp = MLP(self.deep_dim + sum(lengths.values()) * embed_dim, hidden, 1, activation="relu",
                       dropout=dropout)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        e = self.embedding(x)
        outputs = []
        for s in self.pairs:
            seq, mask = e.sequences[s]
            tokens = torch.cat([seq, e.fields[:, self._candidate[s]].unsqueeze(1)], dim=1) + self.positions[s]
            keep = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            out = self.encoders[s](tokens, src_key_padding_mask=~keep)
            outputs.append((out * keep.unsqueeze(-1)).flatten(1))
        return self.mlp(torch.cat([self._deep_input(e), *outputs], dim=1)).squeeze(1)


class MMoE(_FieldModel):
    """Multi-gate mixture of experts (Ma et al. 2018): shared expert MLPs over the embedded input, a softmax gate and
    a tower per task; ``forward`` returns logits ``[B, num_tasks]``. Train with per-task loss weights
    (``fastrec.train.Trainer(task_weights=...)``).

    Args:
        features, embed_dim, sparse_optimizer: as in :class:`DeepFM`.
        num_tasks: T.
        num_experts: shared experts.
        expert_hidden: each expert's widths.
        tower_hidden: each task tower's hidden widths.
        dropout: of experts and towers.
    """

    def __init__(self, features: Sequence[Feature], num_tasks: int = 2, embed_dim: int = 10, num_experts: int = 4,
                 expert_hidden: Sequence[int] = (128,), tower_hidden: Sequence[int] = (64,), *, dropout: float = 0.0,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        self._build(features, embed_dim, sparse_optimizer, False, linear=False)
        self.num_tasks = num_tasks
        self.experts = MixtureOfExperts(self.deep_dim, num_tasks, num_experts, expert_hidden, dropout=dropout)
        self.towers = nn.ModuleList(MLP(self.experts.output_dim, tower_hidden, 1, dropout=dropout)
                                    for _ in range(num_tasks))

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        shared = self.experts(self._deep_input(self.embedding(x)))
        return torch.cat([tower(h) for tower, h in zip(self.towers, shared)], dim=1)


class SharedBottom(MMoE):
    """Shared-bottom multi-task model (Caruana 1997): one shared MLP, a tower per task (MMoE with a single expert
    and no gates); logits ``[B, num_tasks]``.

    Args:
        features, num_tasks, embed_dim, tower_hidden, dropout, sparse_optimizer: as in :class:`MMoE`.
        bottom_hidden: the shared MLP's widths.
    """

    def __init__(self, features: Sequence[Feature], num_tasks: int = 2, embed_dim: int = 10,
                 bottom_hidden: Sequence[int] = (128,), tower_hidden: Sequence[int] = (64,), *, dropout: float = 0.0,
                 sparse_optimizer: FusedOptimizer | None = None) -> None:
        super().__init__(features, num_tasks, embed_dim, 1, bottom_hidden, tower_hidden, dropout=dropout,
                         sparse_optimizer=sparse_optimizer)
