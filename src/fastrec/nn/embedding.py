"""Embedding modules over fastrec's table-batched embedding bag: all tables in one weight buffer, one kernel call
per batch, and optionally the optimizer fused into the backward."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fastrec import ops
from fastrec.jagged import KeyedJagged
from fastrec.nn._huge_pages import empty_table
from fastrec.optim import FusedOptimizer

__all__ = ["EmbeddingBag", "EmbeddingBagCollection", "TableConfig"]

_POOLING_CODES = {"sum": 0, "mean": 1, "none": 0}  # "none" (sequence) lookups are sums over bags of one id


@dataclass(frozen=True)
class TableConfig:
    """One embedding table.

    Args:
        name: the table's name (unique in a collection).
        num_embeddings: rows.
        embedding_dim: columns.
        feature_names: the features that look ids up in this table (default: the table's name); several features
            may share one table.
        pooling: ``"sum"`` or ``"mean"`` over each bag, or ``"none"`` for sequence features (one vector per id).
    """

    name: str
    num_embeddings: int
    embedding_dim: int
    feature_names: tuple[str, ...] = ()
    pooling: str = "sum"

    def __post_init__(self) -> None:
        if not self.feature_names:
            object.__setattr__(self, "feature_names", (self.name,))
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        if not isinstance(self.num_embeddings, int) or self.num_embeddings <= 0:
            raise ValueError(f"TableConfig {self.name!r}: num_embeddings must be a positive int, got "
                             f"{self.num_embeddings!r}")
        if not isinstance(self.embedding_dim, int) or self.embedding_dim <= 0:
            raise ValueError(f"TableConfig {self.name!r}: embedding_dim must be a positive int, got "
                             f"{self.embedding_dim!r}")
        if self.pooling not in _POOLING_CODES:
            raise ValueError(f"TableConfig {self.name!r}: pooling must be 'sum', 'mean' or 'none', got "
                             f"{self.pooling!r}")


def _table_layout(tables: Sequence[TableConfig]) -> list[int]:
    """Five ints per table: element offset, dim, rows, first global row, pooling code (see fastrec.ops.embedding)."""
    layout, element, first_row = [], 0, 0
    for table in tables:
        layout += [element, table.embedding_dim, table.num_embeddings, first_row, _POOLING_CODES[table.pooling]]
        element += table.num_embeddings * table.embedding_dim
        first_row += table.num_embeddings
    return layout


class EmbeddingBagCollection(nn.Module):
    """Many embedding tables in one contiguous buffer, looked up in one fused kernel call per batch.

    Inputs:

    - a dense ``[B, F]`` id tensor, one id per feature in :attr:`feature_names` order (the CTR case): returns
      ``[B, F, D]`` when all tables have the same dim, else ``[B, sum D]``;
    - a :class:`fastrec.KeyedJagged` with any subset of the features: returns a dict feature name -> ``[B, D]``
      (pooled) or ``[num_ids, D]`` (``pooling="none"``), or with ``concat=True`` the pooled ``[B, sum D]`` in the
      order of the input's keys.

    Training: with ``optimizer=None`` the weights receive row-sparse gradients (coalesced COO, as
    ``nn.Embedding(sparse=True)``) for torch.optim.SGD / Adagrad / SparseAdam. With a fastrec.optim fused optimizer
    the weights are updated inside the backward (no gradient is stored; do not give them to a torch optimizer) and
    the optimizer state lives in this module's buffers, so ``state_dict`` holds weights and state exactly. Each
    call in training mode (with grad enabled) is one optimizer step (``optimizer_step``, Adam's bias correction);
    all of its lookups are applied in its backward, each touched row once.

    Weights are initialized uniform in +-sqrt(1 / num_embeddings) per table (TorchRec's default). ``dtype`` float16
    or bfloat16 halves the memory traffic of lookups (accumulation is float32; outputs are float32). On Linux the
    weight and optimizer-state buffers are backed by transparent huge pages where the system allows it (fewer TLB
    misses on random rows; ``FASTREC_HUGE_PAGES=0`` turns it off).
    """

    def __init__(
        self,
        tables: Sequence[TableConfig],
        optimizer: FusedOptimizer | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        tables = tuple(tables)
        if not tables:
            raise ValueError("EmbeddingBagCollection: at least one table is required")
        if len({t.name for t in tables}) != len(tables):
            raise ValueError(f"EmbeddingBagCollection: table names must be unique, got {[t.name for t in tables]}")
        features = [name for t in tables for name in t.feature_names]
        if len(set(features)) != len(features):
            raise ValueError(f"EmbeddingBagCollection: a feature may use one table only, got {features}")
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise TypeError(f"EmbeddingBagCollection: dtype must be float32, float16 or bfloat16, got {dtype}")
        if optimizer is not None and not isinstance(optimizer, FusedOptimizer):
            raise TypeError(f"EmbeddingBagCollection: optimizer must be a fastrec.optim fused optimizer or None, got "
                            f"{type(optimizer).__name__}")
        self.tables = tables
        self.optimizer = optimizer
        self.feature_names = features
        self._table_of_feature = {name: i for i, t in enumerate(tables) for name in t.feature_names}
        self._layout = _table_layout(tables)
        self._all_features = [self._table_of_feature[f] for f in features]
        dims = {t.embedding_dim for t in tables}
        self.embedding_dim = dims.pop() if len(dims) == 1 else None  # None: mixed dims
        total_rows = sum(t.num_embeddings for t in tables)
        total_elements = sum(t.num_embeddings * t.embedding_dim for t in tables)
        shape = (total_rows, self.embedding_dim) if self.embedding_dim else (total_elements,)
        self.weight = nn.Parameter(empty_table(shape, dtype, device), requires_grad=optimizer is None)
        with torch.no_grad():
            for table in tables:
                bound = math.sqrt(1.0 / table.num_embeddings)
                self.table_weight(table.name).uniform_(-bound, bound)
        state_sizes = {"element": total_elements, "row": total_rows}
        kinds = optimizer.state_kinds if optimizer is not None else ()
        for i in range(2):
            size = state_sizes[kinds[i]] if i < len(kinds) else 0
            self.register_buffer(f"optimizer_state{i + 1}", empty_table((size,), torch.float32, device).zero_())
        if optimizer is not None and getattr(optimizer, "initial_accumulator_value", 0.0):
            self.optimizer_state1.fill_(optimizer.initial_accumulator_value)
        self.register_buffer("optimizer_step", torch.zeros((), dtype=torch.int64, device=device))
        self._trigger = torch.zeros(0, requires_grad=True)  # makes autograd call the fused backward

    # ---- weights ----
    def table_weight(self, name: str) -> Tensor:
        """The ``[num_embeddings, embedding_dim]`` view of table ``name`` inside the shared buffer."""
        for i, table in enumerate(self.tables):
            if table.name == name:
                start, dim, rows = self._layout[5 * i : 5 * i + 3]
                return self.weight.view(-1)[start : start + dim * rows].view(rows, dim)
        raise KeyError(f"no table named {name!r}; tables: {[t.name for t in self.tables]}")

    # ---- forward ----
    def forward(self, features: Tensor | KeyedJagged, concat: bool = False) -> Tensor | dict[str, Tensor]:
        if self._fused_training():
            self.optimizer_step += 1  # one optimizer step per call: every lookup of this call updates with it
        if isinstance(features, KeyedJagged):
            return self._forward_jagged(features, concat)
        if isinstance(features, Tensor):
            return self._forward_dense(features)
        raise TypeError(f"EmbeddingBagCollection: expected a [B, F] id tensor or a KeyedJagged, got "
                        f"{type(features).__name__}")

    def _forward_dense(self, ids: Tensor) -> Tensor:
        if ids.dim() != 2 or ids.shape[1] != len(self.feature_names):
            raise ValueError(f"EmbeddingBagCollection: dense ids must be [batch, {len(self.feature_names)}] (one id "
                             f"per feature {self.feature_names}), got shape {tuple(ids.shape)}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"EmbeddingBagCollection: ids must be int64 or int32, got {ids.dtype}")
        batch, num_features = ids.shape
        indices = ids.t().reshape(-1)  # feature-major
        offsets = torch.arange(num_features * batch + 1, dtype=ids.dtype, device=ids.device)
        out = self._lookup(self._all_features, indices, offsets, None, self.feature_names)
        return out.view(batch, num_features, self.embedding_dim) if self.embedding_dim else out

    def _forward_jagged(self, kjt: KeyedJagged, concat: bool) -> Tensor | dict[str, Tensor]:
        unknown = [k for k in kjt.keys if k not in self._table_of_feature]
        if unknown:
            raise KeyError(f"EmbeddingBagCollection: unknown features {unknown}; known: {self.feature_names}")
        sequence = [i for i, k in enumerate(kjt.keys) if self.tables[self._table_of_feature[k]].pooling == "none"]
        if concat and sequence:
            raise ValueError(f"EmbeddingBagCollection: concat=True needs pooled features, but "
                             f"{[kjt.keys[i] for i in sequence]} have pooling='none'")
        pooled = [i for i in range(len(kjt.keys)) if i not in sequence]
        result: dict[str, Tensor] = {}
        if pooled:
            keys = [kjt.keys[i] for i in pooled]
            if len(pooled) == len(kjt.keys):
                values, offsets, weights = kjt.values, kjt.offsets, kjt.weights
            else:
                values, offsets, weights = _select_features(kjt, pooled)
            out = self._lookup(self._feature_tables(keys), values, offsets, weights, keys)
            if concat:
                return out
            dims = [self.tables[self._table_of_feature[k]].embedding_dim for k in keys]
            result.update(zip(keys, out.split(dims, dim=1)))
        if sequence:
            result.update(self._sequence_lookup(kjt, sequence))
        return {k: result[k] for k in kjt.keys}

    def _sequence_lookup(self, kjt: KeyedJagged, sequence: list[int]) -> dict[str, Tensor]:
        """One call for all sequence features: each id is a bag of its own; features with fewer ids than the
        longest are padded with empty bags, so that every touched row is updated once per step."""
        ranges = [kjt.feature_range(i) for i in sequence]
        longest = max(end - start for start, end in ranges)
        values = torch.cat([kjt.values[start:end] for start, end in ranges])
        weights = torch.cat([kjt.weights[start:end] for start, end in ranges]) if kjt.weights is not None else None
        bag_starts = [torch.arange(end - start, dtype=values.dtype, device=values.device) for start, end in ranges]
        offsets, base = [], 0
        for starts, (start, end) in zip(bag_starts, ranges):
            offsets.append(torch.cat([starts + base, starts.new_full((longest - (end - start),), base + end - start)]))
            base += end - start
        offsets.append(values.new_tensor([base]))
        keys = [kjt.keys[i] for i in sequence]
        out = self._lookup(self._feature_tables(keys), values, torch.cat(offsets), weights, keys)
        dims = [self.tables[self._table_of_feature[k]].embedding_dim for k in keys]
        return {key: part[: end - start] for key, part, (start, end) in zip(keys, out.split(dims, dim=1), ranges)}

    def _fused_training(self) -> bool:
        return self.optimizer is not None and self.training and torch.is_grad_enabled()

    def _feature_tables(self, keys: list[str]) -> list[int]:
        return [self._table_of_feature[k] for k in keys]

    def _lookup(self, feature_tables: list[int], indices: Tensor, offsets: Tensor, weights: Tensor | None,
                keys: Sequence[str]) -> Tensor:
        try:
            if self._fused_training():
                return ops.embedding_bag_fused(
                    self.weight, self.optimizer_state1, self.optimizer_state2, int(self.optimizer_step), self._layout,
                    feature_tables, indices, offsets, weights, self.optimizer.update(), self._trigger,
                )
            return ops.embedding_bag(self.weight, self._layout, feature_tables, indices, offsets, weights)
        except IndexError as error:  # the kernel names the feature by position: name it by its key
            raise IndexError(_name_feature(str(error), keys, self.tables)) from None

    # ---- conversion ----
    def to_embedding_modules(self) -> nn.ModuleDict:
        """Copies of the tables as torch modules: nn.EmbeddingBag (mode = pooling) or nn.Embedding for
        ``pooling="none"``; keyed by table name."""
        modules = nn.ModuleDict()
        for table in self.tables:
            weight = self.table_weight(table.name).detach().clone()
            if table.pooling == "none":
                modules[table.name] = nn.Embedding.from_pretrained(weight, freeze=False)
            else:
                modules[table.name] = nn.EmbeddingBag.from_pretrained(weight, freeze=False, mode=table.pooling)
        return modules

    @classmethod
    def from_embedding_modules(
        cls,
        modules: Mapping[str, nn.EmbeddingBag | nn.Embedding],
        feature_names: Mapping[str, Sequence[str]] | None = None,
        optimizer: FusedOptimizer | None = None,
    ) -> EmbeddingBagCollection:
        """A collection holding copies of torch embedding modules keyed by table name (nn.EmbeddingBag with mode
        'sum' or 'mean', or nn.Embedding for sequence lookups); ``feature_names`` maps table -> its features."""
        tables = []
        for name, module in modules.items():
            if isinstance(module, nn.EmbeddingBag):
                if module.mode not in ("sum", "mean"):
                    raise ValueError(f"table {name!r}: mode {module.mode!r} is not supported (sum or mean)")
                pooling = module.mode
            elif isinstance(module, nn.Embedding):
                pooling = "none"
            else:
                raise TypeError(f"table {name!r}: expected nn.EmbeddingBag or nn.Embedding, got "
                                f"{type(module).__name__}")
            rows, dim = module.weight.shape
            tables.append(TableConfig(name, rows, dim, tuple((feature_names or {}).get(name, ())), pooling))
        dtypes = {m.weight.dtype for m in modules.values()}
        collection = cls(tables, optimizer, dtype=dtypes.pop() if len(dtypes) == 1 else torch.float32)
        with torch.no_grad():
            for name, module in modules.items():
                collection.table_weight(name).copy_(module.weight)
        return collection

    def extra_repr(self) -> str:
        tables = ", ".join(f"{t.name}({t.num_embeddings}x{t.embedding_dim}, {t.pooling})" for t in self.tables)
        return f"tables=[{tables}], optimizer={self.optimizer}, dtype={self.weight.dtype}"


def _select_features(kjt: KeyedJagged, keep: list[int]) -> tuple[Tensor, Tensor, Tensor | None]:
    """values, offsets, weights of the features at positions ``keep`` (feature-major, in that order)."""
    ranges = [kjt.feature_range(i) for i in keep]
    values = torch.cat([kjt.values[s:e] for s, e in ranges])
    weights = torch.cat([kjt.weights[s:e] for s, e in ranges]) if kjt.weights is not None else None
    batch = kjt.batch_size
    lengths = torch.cat([kjt.lengths[i * batch : (i + 1) * batch] for i in keep])
    offsets = torch.zeros(lengths.numel() + 1, dtype=values.dtype, device=values.device)
    torch.cumsum(lengths, 0, out=offsets[1:])
    return values, offsets, weights


def _name_feature(message: str, keys: Sequence[str], tables: Sequence[TableConfig]) -> str:
    """The kernel's out-of-range message with the feature and table named instead of numbered."""
    match = re.search(r"\(feature (\d+), table (\d+)\)", message)
    if match is None:
        return message
    feature, table = int(match.group(1)), int(match.group(2))
    return message.replace(match.group(0), f"(feature {keys[feature]!r}, table {tables[table].name!r})")


class EmbeddingBag(nn.Module):
    """Drop-in replacement for ``torch.nn.EmbeddingBag`` (same constructor and forward signature) on fastrec's
    kernel: modes 'sum' and 'mean', ``per_sample_weights`` (sum only, as in torch), ``padding_idx``,
    ``include_last_offset``, 2-D fixed-length input, and ``sparse=True`` for row-sparse gradients.
    Not supported (raises): mode='max', ``max_norm``, ``scale_grad_by_freq``. Outputs have the weight's dtype.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        mode: str = "mean",
        sparse: bool = False,
        _weight: Tensor | None = None,
        include_last_offset: bool = False,
        padding_idx: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("sum", "mean"):
            raise ValueError(f"fastrec.nn.EmbeddingBag: mode must be 'sum' or 'mean', got {mode!r} (use "
                             "torch.nn.EmbeddingBag for 'max')")
        if max_norm is not None or scale_grad_by_freq:
            raise NotImplementedError("fastrec.nn.EmbeddingBag: max_norm and scale_grad_by_freq are not supported")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"fastrec.nn.EmbeddingBag: padding_idx must be within num_embeddings "
                                 f"({num_embeddings}), got {padding_idx}")
            padding_idx %= num_embeddings
        config = TableConfig("weight", num_embeddings, embedding_dim, pooling=mode)  # validates the sizes
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.mode, self.sparse = mode, sparse
        self.include_last_offset, self.padding_idx = include_last_offset, padding_idx
        self.max_norm, self.norm_type, self.scale_grad_by_freq = None, norm_type, False
        if _weight is None:
            self.weight = nn.Parameter(empty_table((num_embeddings, embedding_dim), dtype or torch.get_default_dtype(),
                                                   device))
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"fastrec.nn.EmbeddingBag: _weight must have shape "
                                 f"{(num_embeddings, embedding_dim)}, got {tuple(_weight.shape)}")
            self.weight = nn.Parameter(_weight)
        self._layout = _table_layout([config])
        self._feature_tables = [0]

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.padding_idx is not None:
            with torch.no_grad():
                self.weight[self.padding_idx].fill_(0)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, **kwargs) -> EmbeddingBag:
        if embeddings.dim() != 2:
            raise ValueError(f"EmbeddingBag.from_pretrained: embeddings must be 2-D, got shape "
                             f"{tuple(embeddings.shape)}")
        module = cls(*embeddings.shape, _weight=embeddings, **kwargs)
        module.weight.requires_grad = not freeze
        return module

    def forward(self, input: Tensor, offsets: Tensor | None = None, per_sample_weights: Tensor | None = None) -> Tensor:
        if input.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"EmbeddingBag: input must be int64 or int32, got {input.dtype}")
        if per_sample_weights is not None:
            if self.mode != "sum":
                raise ValueError(f"EmbeddingBag: per_sample_weights is only supported for mode='sum', got "
                                 f"mode={self.mode!r}")
            if per_sample_weights.shape != input.shape:
                raise ValueError(f"EmbeddingBag: per_sample_weights must have the input's shape {tuple(input.shape)}, "
                                 f"got {tuple(per_sample_weights.shape)}")
            per_sample_weights = per_sample_weights.reshape(-1).float()
        if input.dim() == 2:
            if offsets is not None:
                raise ValueError("EmbeddingBag: offsets must be None when input is 2-D [bags, ids per bag]")
            indices = input.reshape(-1)
            offsets = torch.arange(0, indices.numel() + 1, max(input.shape[1], 1), dtype=input.dtype,
                                   device=input.device)[: input.shape[0] + 1]
            if input.shape[1] == 0:
                offsets = torch.zeros(input.shape[0] + 1, dtype=input.dtype, device=input.device)
        elif input.dim() == 1:
            if offsets is None or offsets.dim() != 1:
                raise ValueError("EmbeddingBag: a 1-D input needs 1-D offsets (the start of each bag)")
            indices = input
            offsets = offsets.to(input.dtype)
            if not self.include_last_offset:
                offsets = torch.cat([offsets, offsets.new_tensor([indices.numel()])])
        else:
            raise ValueError(f"EmbeddingBag: input must be 1-D (with offsets) or 2-D, got shape {tuple(input.shape)}")
        if self.padding_idx is not None:
            indices, offsets, per_sample_weights = _drop_padding(indices, offsets, per_sample_weights,
                                                                 self.padding_idx)
        weight = self.weight if self.sparse else ops.with_dense_gradient(self.weight)
        out = ops.embedding_bag(weight, self._layout, self._feature_tables, indices, offsets, per_sample_weights)
        return out if out.dtype == self.weight.dtype else out.to(self.weight.dtype)

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}, sparse={self.sparse}"
                + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""))


def _drop_padding(indices: Tensor, offsets: Tensor, weights: Tensor | None, padding_idx: int):
    """Removes ids equal to padding_idx; bags shrink (a mean counts only the ids left), as in torch."""
    keep = indices != padding_idx
    if bool(keep.all()):
        return indices, offsets, weights
    kept_before = torch.zeros(indices.numel() + 1, dtype=offsets.dtype, device=indices.device)
    torch.cumsum(keep.to(offsets.dtype), 0, out=kept_before[1:])
    return indices[keep], kept_before[offsets.long()], (weights[keep] if weights is not None else None)
