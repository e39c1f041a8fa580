"""The shared parts of the CTR models: the feature embedding (every lookup through one fused
:class:`fastrec.nn.EmbeddingBagCollection` call), the linear part, and the model base class with save/load."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from fastrec import optim
from fastrec._atomic import atomic_open
from fastrec.features.specs import (
    DenseFeature,
    Feature,
    MultiHotFeature,
    SequenceFeature,
    SparseFeature,
    check_features,
    feature_from_dict,
    feature_to_dict,
)
from fastrec.jagged import KeyedJagged
from fastrec.nn import EmbeddingBagCollection, TableConfig
from fastrec.optim import FusedOptimizer

__all__ = ["CTRModel", "Embedded", "FeatureEmbedding", "FeaturesLinear", "load_model"]


def default_sparse_optimizer() -> FusedOptimizer:
    """The embeddings' optimizer when a model is given none: lazy Adam, lr 1e-3 (the dense parameters' default)."""
    return optim.FusedAdam(lr=1e-3)


class Embedded(NamedTuple):
    """What :class:`FeatureEmbedding` returns.

    fields: ``[B, F, K]``, one vector per sparse / multi-hot feature (and per dense value with ``dense_as_fields``);
    dense: ``[B, sum of dims]`` raw dense values, or None without dense features;
    sequences: feature name -> (``[B, L, K]`` vectors, zero at padding; ``[B, L]`` bool mask of real positions).
    """

    fields: Tensor
    dense: Tensor | None
    sequences: dict[str, tuple[Tensor, Tensor]]


def _get(x: Mapping[str, Tensor], name: str) -> Tensor:
    try:
        return x[name]
    except KeyError:
        raise KeyError(f"the batch has no feature {name!r}; it has {sorted(x)}") from None


class FeatureEmbedding(nn.Module):
    """Embeds a batch (dict feature name -> tensor, see :mod:`fastrec.features.specs`) with one fused lookup.

    Features naming the same table share it; a table shared with a sequence feature is looked up per id
    (``pooling="none"``) so that the candidate item and the behaviour sequence update each row once per step.

    Args:
        features: the feature specs.
        embed_dim: K, the width of every table.
        optimizer: the fused sparse optimizer of the tables (None: :func:`default_sparse_optimizer`).
        dense_as_fields: give each dense value its own K-vector ``v_i`` and add ``x_i * v_i`` as a field.
        init_std: tables and dense vectors start from N(0, init_std^2).
    """

    def __init__(self, features: Sequence[Feature], embed_dim: int, optimizer: FusedOptimizer | None = None, *,
                 dense_as_fields: bool = False, init_std: float = 1e-2) -> None:
        super().__init__()
        features = check_features(features, "FeatureEmbedding")
        self.features = {f.name: f for f in features}
        self.dense = [f for f in features if isinstance(f, DenseFeature)]
        self.dense_dim = sum(f.dim for f in self.dense)
        lookups = [f for f in features if not isinstance(f, DenseFeature)]
        groups: dict[str, list[Feature]] = {}
        for f in lookups:
            groups.setdefault(f.table_name, []).append(f)
        tables = []
        for name, group in groups.items():
            poolings = {f.pooling for f in group if isinstance(f, MultiHotFeature)}
            has_sequence = any(isinstance(f, SequenceFeature) for f in group)
            if len(poolings) > 1 or (has_sequence and poolings):
                raise ValueError(f"FeatureEmbedding: table {name!r} is shared by features with different poolings "
                                 f"({[f.name for f in group]}); share tables between sparse and sequence features, "
                                 "or between multi-hot features of one pooling")
            pooling = "none" if has_sequence else (poolings.pop() if poolings else "sum")
            tables.append(TableConfig(name, max(f.vocab_size for f in group), embed_dim,
                                      tuple(f.name for f in group), pooling))
        self.embed_dim = embed_dim
        self.field_names: list[str] = []
        self.sequence_names: list[str] = []
        self.ebc: EmbeddingBagCollection | None = None
        if tables:
            self.ebc = EmbeddingBagCollection(tables, optimizer if optimizer is not None else
                                              default_sparse_optimizer())
            with torch.no_grad():
                self.ebc.weight.normal_(0.0, init_std)
            kinds = self.features
            self.field_names = [n for n in self.ebc.feature_names if not isinstance(kinds[n], SequenceFeature)]
            self.sequence_names = [n for n in self.ebc.feature_names if isinstance(kinds[n], SequenceFeature)]
        self._dense_ids = all(isinstance(f, SparseFeature) for f in lookups)  # one id per feature: [B, F] lookup
        self._weighted = any(isinstance(f, MultiHotFeature) and f.weighted for f in lookups)
        self.dense_embedding = None
        if dense_as_fields and self.dense_dim:
            self.dense_embedding = nn.Parameter(torch.randn(self.dense_dim, embed_dim) * init_std)
        self.num_fields = len(self.field_names) + (self.dense_dim if self.dense_embedding is not None else 0)

    def forward(self, x: Mapping[str, Tensor]) -> Embedded:
        dense = None
        if self.dense:
            parts = [_get(x, f.name) for f in self.dense]
            dense = torch.cat([p.reshape(p.shape[0], -1).float() for p in parts], dim=1)
        sequences: dict[str, tuple[Tensor, Tensor]] = {}
        fields = None
        if self.ebc is not None and self._dense_ids:
            ids = torch.stack([_get(x, n) for n in self.ebc.feature_names], dim=1)
            fields = self.ebc(ids)
        elif self.ebc is not None:
            out = self.ebc(self._jagged(x))
            fields = torch.stack([out[n] for n in self.field_names], dim=1) if self.field_names else None
            for n in self.sequence_names:
                mask = _get(x, n) >= 0
                emb = out[n].new_zeros(*mask.shape, self.embed_dim)
                sequences[n] = (emb.masked_scatter(mask.unsqueeze(-1), out[n]), mask)
        if self.dense_embedding is not None:
            dense_fields = dense.unsqueeze(-1) * self.dense_embedding
            fields = dense_fields if fields is None else torch.cat([fields, dense_fields], dim=1)
        if fields is None:
            ref = dense if dense is not None else next(iter(sequences.values()))[0]
            fields = ref.new_zeros(ref.shape[0], 0, self.embed_dim)
        return Embedded(fields, dense, sequences)

    def _jagged(self, x: Mapping[str, Tensor]) -> KeyedJagged:
        values, lengths, weights = [], [], []
        for name in self.ebc.feature_names:
            f, ids = self.features[name], _get(x, name)
            if isinstance(f, SparseFeature):
                if ids.dim() != 1:
                    raise ValueError(f"feature {name!r}: a SparseFeature is int64 [batch], got shape "
                                     f"{tuple(ids.shape)}")
                values.append(ids)
                lengths.append(torch.ones_like(ids))
                if self._weighted:
                    weights.append(torch.ones(ids.shape, dtype=torch.float32, device=ids.device))
                continue
            if ids.dim() != 2:
                raise ValueError(f"feature {name!r}: a {type(f).__name__} is int64 [batch, length] padded with -1, got "
                                 f"shape {tuple(ids.shape)}")
            mask = ids >= 0
            values.append(ids[mask])
            lengths.append(mask.sum(1))
            if self._weighted:
                w = _get(x, f.weight_key)[mask].float() if isinstance(f, MultiHotFeature) and f.weighted else \
                    torch.ones(values[-1].shape, dtype=torch.float32, device=ids.device)
                weights.append(w)
        return KeyedJagged(self.ebc.feature_names, torch.cat(values).long(), lengths=torch.cat(lengths).long(),
                           weights=torch.cat(weights) if self._weighted else None)


class FeaturesLinear(nn.Module):
    """The first-order part ``b + sum_f w_f[id_f] + <w_dense, x_dense>``: ``[B]``. Lookups go through a width-1
    :class:`FeatureEmbedding` (sequence features are left out)."""

    def __init__(self, features: Sequence[Feature], optimizer: FusedOptimizer | None = None) -> None:
        super().__init__()
        features = [f for f in features if not isinstance(f, SequenceFeature)]
        self.embedding = FeatureEmbedding(features, 1, optimizer, init_std=1e-4)
        self.dense = nn.Linear(self.embedding.dense_dim, 1, bias=False) if self.embedding.dense_dim else None
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        e = self.embedding(x)
        out = e.fields.sum(dim=(1, 2)) + self.bias
        if self.dense is not None:
            out = out + self.dense(e.dense).squeeze(1)
        return out


# ---------------------------------------------------------------------------------------------------- base class
_MODELS: dict[str, type[CTRModel]] = {}


class CTRModel(nn.Module):
    """Base of the CTR models: ``forward(batch) -> logits`` ``[B]`` (``[B, num_tasks]`` for multi-task models).

    The constructor's arguments are recorded, so :meth:`save` / :func:`load_model` rebuild the model exactly, with
    the fitted :class:`fastrec.features.Preprocessor` alongside.
    """

    num_tasks: int = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _MODELS[cls.__name__] = cls
        init = cls.__init__

        @functools.wraps(init)
        def recording_init(self: CTRModel, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            if type(self) is cls:
                bound = inspect.signature(init).bind(self, *args, **kw)
                bound.apply_defaults()
                self._init_args = {k: v for k, v in list(bound.arguments.items())[1:]}

        cls.__init__ = recording_init

    @torch.no_grad()
    def predict_proba(self, x: Mapping[str, Tensor]) -> Tensor:
        """Probabilities (sigmoid of the logits), in eval mode."""
        was = self.training
        self.eval()
        try:
            return torch.sigmoid(self(x))
        finally:
            self.train(was)

    def config(self) -> dict[str, Any]:
        """The constructor arguments as plain data."""
        return {k: _encode_arg(v) for k, v in self._init_args.items()}

    def save(self, path: str | os.PathLike[str], preprocessor: Any = None) -> None:
        """Writes the model (class, constructor arguments, weights and optimizer state) and the fitted preprocessor
        (optional) to ``path``, through a temporary file renamed into place."""
        payload = {"model": type(self).__name__, "config": self.config(), "state_dict": self.state_dict(),
                   "preprocessor": None if preprocessor is None else preprocessor.state_dict()}
        with atomic_open(path) as f:
            torch.save(payload, f)


def load_model(path: str | os.PathLike[str]) -> tuple[CTRModel, Any]:
    """``(model, preprocessor or None)`` from a file written by :meth:`CTRModel.save`."""
    from fastrec.features.preprocessing import Preprocessor

    payload = torch.load(path, map_location="cpu", weights_only=True)
    name = payload["model"]
    if name not in _MODELS:
        raise ValueError(f"{str(path)!r}: unknown model class {name!r}; known: {sorted(_MODELS)}")
    model = _MODELS[name](**{k: _decode_arg(v) for k, v in payload["config"].items()})
    model.load_state_dict(payload["state_dict"])
    pre = payload["preprocessor"]
    return model, (None if pre is None else Preprocessor.from_state_dict(pre))


def _encode_arg(v: Any) -> Any:
    if isinstance(v, (SparseFeature, MultiHotFeature, DenseFeature, SequenceFeature)):
        return {"__feature__": feature_to_dict(v)}
    if isinstance(v, FusedOptimizer):
        return {"__optimizer__": type(v).__name__, **dataclasses.asdict(v)}
    if isinstance(v, (list, tuple)):
        return [_encode_arg(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _encode_arg(x) for k, x in v.items()}
    return v


def _decode_arg(v: Any) -> Any:
    if isinstance(v, dict) and "__feature__" in v:
        return feature_from_dict(v["__feature__"])
    if isinstance(v, dict) and "__optimizer__" in v:
        d = dict(v)
        cls = getattr(optim, d.pop("__optimizer__"))
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)
    if isinstance(v, list):
        return [_decode_arg(x) for x in v]
    if isinstance(v, dict):
        return {k: _decode_arg(x) for k, x in v.items()}
    return v
