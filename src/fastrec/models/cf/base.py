"""What every collaborative-filtering model shares: the ``Recommender`` interface (score, score_all, recommend,
save/load), id-embedding tables on fastrec's fused embedding collection, side-feature bags, and the small training
helpers (batches of entries or users, optimizers, progress bars).

Ids are the dense internal ids of :class:`fastrec.data.Interactions` (0 <= user < n_users, 0 <= item < n_items).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from numba import njit
from torch import Tensor, nn
from tqdm.auto import tqdm

from fastrec._atomic import atomic_open
from fastrec.data import Interactions
from fastrec.jagged import KeyedJagged
from fastrec.nn import EmbeddingBagCollection, TableConfig
from fastrec.optim import FusedAdagrad, FusedAdam, FusedOptimizer, FusedRowWiseAdagrad, FusedSGD

__all__ = ["FeatureBags", "IdTables", "Recommender", "as_user_tensor", "fused_optimizer", "load_model"]

_FUSED = {"sgd": FusedSGD, "adagrad": FusedAdagrad, "rowwise_adagrad": FusedRowWiseAdagrad, "adam": FusedAdam,
          "dense_adam": partial(FusedAdam, lazy=False)}
_DENSE = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rowwise_adagrad": torch.optim.Adagrad,
          "adam": torch.optim.Adam, "dense_adam": torch.optim.Adam}


def fused_optimizer(name: str, lr: float) -> FusedOptimizer:
    """A fastrec.optim fused optimizer by name (``sgd``, ``adagrad``, ``rowwise_adagrad``, ``adam``: lazy Adam on the
    rows a step touches; ``dense_adam``: Adam on every row each step, as torch.optim.Adam on dense weights)."""
    if name not in _FUSED:
        raise ValueError(f"optimizer must be one of {sorted(_FUSED)}, got {name!r}")
    return _FUSED[name](lr=lr)


def dense_optimizer(name: str, params: Sequence[nn.Parameter], lr: float) -> torch.optim.Optimizer | None:
    """The torch optimizer of the same name for the dense (non-embedding) parameters; None when there are none.

    Fused (one pass over each tensor): torch's default multi-pass step cost 9x more on a 40,981 x 600 decoder
    (Mult-VAE: 200 ms against 23 ms an Adam step at one thread), more than the layer's forward product."""
    params = [p for p in params if p.requires_grad]
    if name not in _DENSE:
        raise ValueError(f"optimizer must be one of {sorted(_DENSE)}, got {name!r}")
    return _DENSE[name](params, lr=lr, fused=True) if params else None


def set_lr(tables: FusedOptimizer | None, dense: torch.optim.Optimizer | None, lr: float) -> None:
    """Sets the learning rate of a model's fused table optimizer and of its dense optimizer (each if any)."""
    if tables is not None:
        tables.lr = lr
    for group in dense.param_groups if dense is not None else ():
        group["lr"] = lr


def as_user_tensor(users: Any, n: int, name: str = "users") -> Tensor:
    """int64 tensor of ids in [0, n); anything else raises naming the bad value."""
    t = torch.as_tensor(np.asarray(users) if not isinstance(users, Tensor) else users).reshape(-1)
    if t.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{name}: expected integer ids, got dtype {t.dtype}")
    t = t.long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        bad = int(t[(t < 0) | (t >= n)][0])
        raise IndexError(f"{name}: id {bad} is outside [0, {n})")
    return t


def _csr(x: Interactions | sp.spmatrix, shape: tuple[int, int], name: str) -> sp.csr_matrix:
    m = x.to_scipy() if isinstance(x, Interactions) else sp.csr_matrix(x)
    if m.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {m.shape}")
    m = sp.csr_matrix(m, dtype=np.float32)
    m.sort_indices()
    return m


class FeatureBags(nn.Module):
    """Attributes of users or items as weighted bags: row r of a ``[n_rows, n_values]`` sparse matrix lists the
    attribute values of entity r (one-hot fields, multi-hot genres, numeric weights). Kept as int64/float32 buffers
    so that they travel with ``state_dict``; :meth:`bags` gives the (ids, lengths, weights) of a batch."""

    def __init__(self, matrix: Any) -> None:
        super().__init__()
        m = sp.csr_matrix(matrix, dtype=np.float32)
        m.sort_indices()
        self.n_rows, self.n_values = m.shape
        if self.n_values == 0:
            raise ValueError("feature matrix has no columns")
        self.register_buffer("indptr", torch.from_numpy(m.indptr.astype(np.int64)))
        self.register_buffer("indices", torch.from_numpy(m.indices.astype(np.int64)))
        self.register_buffer("weights", torch.from_numpy(m.data.astype(np.float32)))

    def bags(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(ids, lengths [B], weights) of the given rows, concatenated."""
        start, stop = self.indptr[rows], self.indptr[rows + 1]
        lengths = stop - start
        pos = torch.repeat_interleave(start - torch.cumsum(lengths, 0) + lengths, lengths)
        src = pos + torch.arange(pos.numel())
        return self.indices[src], lengths, self.weights[src]


class IdTables(nn.Module):
    """Embedding tables looked up together in one call of :class:`fastrec.nn.EmbeddingBagCollection` per step.

    ``tables`` maps a table name to (rows, dim, feature names); features ending in ``"_bag"`` are pooled (weighted
    sums of side-feature bags), the others return one vector per id. With a fused optimizer (``optimizer`` set) the
    rows are updated in the backward; with None they are plain parameters with sparse gradients.
    """

    def __init__(self, tables: Mapping[str, tuple[int, int, Sequence[str]]], optimizer: FusedOptimizer | None,
                 init_std: float | None = None, seed: int = 0) -> None:
        super().__init__()
        configs = []
        self.pooled: set[str] = set()
        for name, (rows, dim, features) in tables.items():
            pooled = [f.endswith("_bag") for f in features]
            if any(pooled) and not all(pooled):
                raise ValueError(f"table {name!r}: features {list(features)} mix bags and ids")
            configs.append(TableConfig(name, int(rows), int(dim), tuple(features), "sum" if all(pooled) else "none"))
            self.pooled.update(f for f in features if f.endswith("_bag"))
        self.ebc = EmbeddingBagCollection(configs, optimizer)
        if init_std is not None:
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for name in tables:
                    w = self.ebc.table_weight(name)
                    w.copy_(torch.randn(w.shape, generator=g) * init_std)

    def weight(self, name: str) -> Tensor:
        return self.ebc.table_weight(name)

    def forward(self, ids: Mapping[str, Tensor | tuple[Tensor, Tensor, Tensor]],
                shared: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """``ids`` maps feature -> ids of any shape [B, ...] (one vector per id, output [B, ..., D]) or, for bag
        features, (ids, lengths [B], weights) (output [B, D]). All features must share the batch size B.
        ``shared`` maps (non-bag) feature -> ids [N] that belong to the whole batch rather than to one row, e.g.
        negatives shared by every example (output [N, D]); they ride in the same lookup, so a row that appears both
        in ``ids`` and in ``shared`` gets one aggregated update."""
        keys = list(ids)
        batch = None
        weighted = any(isinstance(v, tuple) for v in ids.values())
        values, lengths, weights, shapes = [], [], [], {}
        for k in keys:
            v = ids[k]
            if isinstance(v, tuple):
                flat, lens, w = v
            else:
                shapes[k] = tuple(v.shape)
                flat = v.reshape(-1)
                per = int(np.prod(v.shape[1:])) if v.dim() > 1 else 1
                lens = torch.full((v.shape[0],), per, dtype=torch.int64)
                w = torch.ones(flat.numel(), dtype=torch.float32) if weighted else None
            if batch is None:
                batch = lens.numel()
            elif lens.numel() != batch:
                raise ValueError(f"feature {k!r}: batch size {lens.numel()}, the other features have {batch}")
            values.append(flat.long())
            lengths.append(lens.long())
            weights.append(w)
        for k, v in (shared or {}).items():
            if batch is None:
                raise ValueError("shared features need at least one per-row feature in ids")
            if v.dim() != 1:
                raise ValueError(f"shared feature {k!r}: expected ids of shape [N], got {tuple(v.shape)}")
            keys.append(k)
            shapes[k] = (v.numel(),)
            lens = torch.zeros(batch, dtype=torch.int64)
            lens[0] = v.numel()  # the jagged layout needs a row: all N ids sit in row 0
            values.append(v.long())
            lengths.append(lens)
            weights.append(torch.ones(v.numel(), dtype=torch.float32) if weighted else None)
        kjt = KeyedJagged(keys, torch.cat(values), lengths=torch.cat(lengths),
                          weights=torch.cat(weights).float() if weighted else None)
        out = self.ebc(kjt)
        return {k: (out[k].view(*shapes[k], -1) if k in shapes else out[k]) for k in keys}


def _init_args(obj: nn.Module, cls: type, args: tuple, kwargs: dict) -> dict[str, Any]:
    bound = inspect.signature(cls.__init__).bind(obj, *args, **kwargs)
    bound.apply_defaults()
    out = dict(bound.arguments)
    out.pop("self")
    return out


def _to_saveable(v: Any) -> Any:
    """Constructor arguments as what torch.load(weights_only=True) reads: tensors, numbers, strings, lists, dicts."""
    if sp.issparse(v):
        m = sp.csr_matrix(v)
        return {"__csr__": [torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64)),
                            torch.from_numpy(m.data.astype(np.float32)), list(m.shape)]}
    if isinstance(v, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(v))}
    if isinstance(v, (list, tuple)):
        return [_to_saveable(x) for x in v]
    if isinstance(v, dict):
        return {k: _to_saveable(x) for k, x in v.items()}
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return v


def _from_saved(v: Any) -> Any:
    if isinstance(v, dict) and "__csr__" in v:
        indptr, indices, data, shape = v["__csr__"]
        return sp.csr_matrix((data.numpy(), indices.numpy(), indptr.numpy()), shape=tuple(shape))
    if isinstance(v, dict) and "__ndarray__" in v:
        return v["__ndarray__"].numpy()
    if isinstance(v, dict):
        return {k: _from_saved(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_saved(x) for x in v]
    return v


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save to a temporary file in the target folder, then os.replace (never a half-written file)."""
    with atomic_open(path) as f:
        torch.save(obj, f)


_REGISTRY: dict[str, type] = {}


class Recommender(nn.Module):
    """Base of the CF models.

    Subclasses implement :meth:`score` (pairs) and usually a faster :meth:`score_all`; ``fit`` stores the training
    interactions (:attr:`seen`) that :meth:`recommend` excludes. ``save``/``load`` keep the constructor arguments,
    every parameter and buffer, and the seen matrix, so a loaded model scores exactly as the saved one.
    """

    n_users: int
    n_items: int

    def __new__(cls, *args: Any, **kwargs: Any) -> Recommender:
        obj = super().__new__(cls)
        obj.__dict__["_config"] = _init_args(obj, cls, args, kwargs)
        return obj

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__qualname__] = cls

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        for name, v in (("n_users", n_users), ("n_items", n_items)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.seen: sp.csr_matrix | None = None

    # ---- scoring ----
    def score(self, users: Any, items: Any) -> Tensor:
        """Scores of (user, item) pairs: ``users [N]`` with ``items [N]``, or ``users [B]`` with ``items [B, C]``."""
        raise NotImplementedError

    def score_all(self, users: Any) -> Tensor:
        """Scores of every item for each user: ``[B, n_items]`` (default: :meth:`score` on all pairs)."""
        u = as_user_tensor(users, self.n_users)
        items = torch.arange(self.n_items).expand(u.numel(), self.n_items)
        return self.score(u, items)

    def _pairs(self, users: Any, items: Any) -> tuple[Tensor, Tensor, tuple[int, ...]]:
        """Checked (users [N], items [N], output shape) of a score() call."""
        u = as_user_tensor(users, self.n_users)
        i_t = torch.as_tensor(np.asarray(items) if not isinstance(items, Tensor) else items)
        shape = tuple(i_t.shape)
        i = as_user_tensor(i_t, self.n_items, "items")
        if len(shape) == 2:
            if shape[0] != u.numel():
                raise ValueError(f"items [B, C] must have B = len(users) = {u.numel()}, got shape {shape}")
            u = u.repeat_interleave(shape[1])
        elif u.numel() != i.numel():
            raise ValueError(f"users and items must have the same length, got {u.numel()} and {i.numel()}")
        return u, i, shape

    @torch.no_grad()
    def recommend(self, users: Any, k: int = 10, exclude_seen: bool = True, block_size: int = 1024
                  ) -> tuple[Tensor, Tensor]:
        """Top-``k`` items per user: ``(scores float32 [B, k], items int64 [B, k])``, best first (the order of
        :meth:`fastrec.retrieval.Index.search` and ``fastrec.linear.EASE.recommend``). With
        ``exclude_seen`` the user's training items (from ``fit``) are never returned; where fewer than k items are
        left the row is padded with item -1 and score -inf."""
        u = as_user_tensor(users, self.n_users)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.n_items:
            raise ValueError(f"k must be an int in [1, {self.n_items}], got {k!r}")
        if exclude_seen and self.seen is None:
            raise RuntimeError("exclude_seen=True needs the training interactions: call fit() first (or set .seen)")
        was_training = self.training
        self.eval()
        items, scores = [], []
        try:
            for s in range(0, u.numel(), block_size):
                ub = u[s : s + block_size]
                sc = self.score_all(ub).float().clone()
                if exclude_seen:
                    sub = self.seen[ub.numpy()]
                    rows = np.repeat(np.arange(ub.numel()), np.diff(sub.indptr))
                    sc[torch.from_numpy(rows), torch.from_numpy(sub.indices.astype(np.int64))] = -torch.inf
                v, i = torch.topk(sc, k, dim=1)
                items.append(torch.where(torch.isneginf(v), -1, i))
                scores.append(v)
        finally:
            self.train(was_training)
        return torch.cat(scores), torch.cat(items)

    def set_seen(self, seen: Interactions | sp.spmatrix | None) -> None:
        """The interactions :meth:`recommend` excludes (``fit`` sets the training data)."""
        self.seen = None if seen is None else _csr(seen, (self.n_users, self.n_items), "seen")

    # ---- persistence ----
    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the model (constructor arguments, parameters, buffers, seen items) to one file, atomically."""
        seen = None if self.seen is None else _to_saveable(self.seen)
        atomic_torch_save({"class": type(self).__qualname__, "config": _to_saveable(self._config),
                           "state": self.state_dict(), "seen": seen, "extra": _to_saveable(self._extra_state())},
                          path)

    def _extra_state(self) -> dict[str, Any]:
        """Fitted values outside the parameters and buffers (subclasses override)."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        pass

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recommender:
        """Reads a model written by :meth:`save` (``cls`` must be the saved class or a base of it)."""
        model = load_model(path)
        if not isinstance(model, cls):
            raise TypeError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model


def load_model(path: str | os.PathLike[str]) -> Recommender:
    """Reads any model written by :meth:`Recommender.save`."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    name = blob.get("class")
    if name not in _REGISTRY:
        raise ValueError(f"{path}: unknown model class {name!r}")
    model = _REGISTRY[name](**_from_saved(blob["config"]))
    model.load_state_dict(blob["state"])
    model.seen = None if blob["seen"] is None else _from_saved(blob["seen"])
    model._load_extra_state(_from_saved(blob["extra"]))
    return model


# ---------------------------------------------------------------------------------------------------- training
def entry_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled index batches over n rows (one epoch)."""
    order = rng.permutation(n)
    for s in range(0, n, batch_size):
        yield order[s : s + batch_size]


@njit(cache=True, nogil=True)
def accidental_positives(indptr: np.ndarray, indices: np.ndarray, users: np.ndarray, negatives: np.ndarray,
                         n_items: int) -> np.ndarray:
    """Flat positions ``b * N + j`` of the pairs where shared negative ``negatives[j]`` is one of the items of
    ``users[b]``. Each item points to the negatives that drew it (a chain through ``following``), so the cost is
    one lookup per (user, train item) of the batch, never B x N."""
    n = negatives.shape[0]
    first = np.full(n_items, -1, dtype=np.int64)
    following = np.empty(n, dtype=np.int64)
    for j in range(n):
        following[j] = first[negatives[j]]
        first[negatives[j]] = j
    count = 0
    for b in range(users.shape[0]):
        for k in range(indptr[users[b]], indptr[users[b] + 1]):
            j = first[indices[k]]
            while j >= 0:
                count += 1
                j = following[j]
    out = np.empty(count, dtype=np.int64)
    count = 0
    for b in range(users.shape[0]):
        for k in range(indptr[users[b]], indptr[users[b] + 1]):
            j = first[indices[k]]
            while j >= 0:
                out[count] = b * n + j
                count += 1
                j = following[j]
    return out


def progress(iterable: Any, desc: str, enabled: bool, total: int | None = None) -> Any:
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False, mininterval=2.0)


def check_positive(name: str, value: Any, integer: bool = False) -> None:
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not ok or not value > 0:
        raise ValueError(f"{name} must be a positive {'int' if integer else 'number'}, got {value!r}")


def interactions_like(x: Any, model: Recommender, name: str = "train") -> Interactions:
    if not isinstance(x, Interactions):
        raise TypeError(f"{name} must be fastrec.data.Interactions, got {type(x).__name__}")
    if x.shape != (model.n_users, model.n_items):
        raise ValueError(f"{name}: shape {x.shape} differs from the model's ({model.n_users}, {model.n_items})")
    return x
