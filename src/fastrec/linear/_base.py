"""What the item-item models share: input conversion and checks, the memory estimate, and serving from a weight
matrix W (scores of a user = x_u W): dense or sparse W, fused top-k, scores, pruning, save/load."""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from fastrec import ops
from fastrec.retrieval.base import atomic_save_npz, read_npz

__all__ = ["ItemItemModel", "available_memory", "check_interactions", "csr_tensors", "top_per_item"]


def check_interactions(x, name: str = "interactions", n_items: int | None = None) -> sp.csr_matrix:
    """A float32 scipy CSR with sorted, duplicate-free rows from an ``Interactions``, a scipy sparse matrix, or a
    sequence of item-id collections (one per user). Empty input, NaN/inf and negative values raise."""
    if hasattr(x, "to_scipy") and not sp.issparse(x):
        m = x.to_scipy()
    elif sp.issparse(x):
        m = x
    elif isinstance(x, (list, tuple)):
        if n_items is None:
            raise TypeError(f"{name}: a list of item-id collections needs the catalog size (fit first)")
        lens = [len(r) for r in x]
        cols = (np.concatenate([np.asarray(list(r), dtype=np.int64).ravel() for r in x]) if sum(lens)
                else np.zeros(0, np.int64))
        if cols.size and (cols.min() < 0 or cols.max() >= n_items):
            raise ValueError(f"{name}: item ids must lie in [0, {n_items}), got {int(cols.min())}..{int(cols.max())}")
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        m = sp.csr_matrix((np.ones(cols.size, np.float32), cols, indptr), shape=(len(x), n_items))
        m.sum_duplicates()
        m.data[:] = 1.0
    else:
        raise TypeError(f"{name}: expected fastrec.data.Interactions, a scipy sparse matrix or a list of item-id "
                        f"lists, got {type(x).__name__}")
    m = sp.csr_matrix(m, dtype=np.float32)
    if n_items is not None and m.shape[1] != n_items:
        raise ValueError(f"{name}: has {m.shape[1]} item columns, the model has {n_items}")
    if not m.has_canonical_format:
        m = m.copy()
        m.sum_duplicates()
    if m.nnz and not np.isfinite(m.data).all():
        raise ValueError(f"{name}: {int((~np.isfinite(m.data)).sum())} NaN or infinite value(s)")
    if m.nnz and (m.data < 0).any():
        raise ValueError(f"{name}: {int((m.data < 0).sum())} negative value(s), e.g. {float(m.data[m.data < 0][0])}; "
                         "the model takes binary or non-negative interaction weights")
    return m


def csr_tensors(m: sp.csr_matrix) -> tuple[Tensor, Tensor, Tensor | None]:
    """(indptr int64, indices int32, values float32 or None when all ones) sharing memory with ``m`` where possible."""
    values = None if (m.data == 1).all() else torch.from_numpy(np.ascontiguousarray(m.data, dtype=np.float32))
    return (torch.from_numpy(np.ascontiguousarray(m.indptr, dtype=np.int64)),
            torch.from_numpy(np.ascontiguousarray(m.indices, dtype=np.int32)), values)


def sparse_gram(indptr: Tensor, indices: Tensor, values: Tensor | None, n_items: int, *, top_m: int = 0,
                dtype: torch.dtype = torch.float32) -> sp.csr_matrix:
    """X^T X of a CSR matrix by the native sparse Gram kernel (:func:`fastrec.ops.gram_sparse`), as scipy CSR."""
    gram_indptr, gram_indices, gram_values = ops.gram_sparse(indptr, indices, values, n_items, top_m=top_m, dtype=dtype)
    return sp.csr_matrix((gram_values.numpy(), gram_indices.numpy(), gram_indptr.numpy()), shape=(n_items, n_items))


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux MemAvailable; else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _csr_arrays(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {f"{prefix}_indptr": m.indptr.astype(np.int64), f"{prefix}_indices": m.indices.astype(np.int32),
            f"{prefix}_data": m.data, f"{prefix}_shape": np.array(m.shape, np.int64)}


def _csr_from(prefix: str, arrays: dict[str, np.ndarray]) -> sp.csr_matrix:
    return sp.csr_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
                         shape=tuple(arrays[f"{prefix}_shape"]))


def top_per_item(weights: Tensor | sp.csr_matrix, top_m: int, per: str = "source",
                 signed: bool = False) -> sp.csr_matrix:
    """The ``top_m`` largest weights of every row (``per="source"``) or column (``per="target"``) of W, dense or
    CSR, as a CSR matrix; by magnitude, or by value when ``signed`` (the strongest positive weights first). Zeros
    are never kept."""
    if not (isinstance(top_m, (int, np.integer)) and top_m >= 1):
        raise ValueError(f"top_m must be an integer >= 1, got {top_m!r}")
    if per not in ("source", "target"):
        raise ValueError(f"per must be 'source' or 'target', got {per!r}")
    n = weights.shape[0]
    if isinstance(weights, Tensor):
        w = weights if per == "source" else weights.T
        m = min(top_m, n)
        rows, cols, vals = [], [], []
        for i0 in range(0, n, 2048):  # row blocks: one [2048, n] temporary at a time
            blk = w[i0:i0 + 2048]
            idx = (blk if signed else blk.abs()).topk(m, dim=1).indices
            v = blk.gather(1, idx)
            keep = v != 0
            rows.append((torch.arange(blk.shape[0]) + i0).unsqueeze(1).expand(-1, m)[keep].numpy())
            cols.append(idx[keep].numpy())
            vals.append(v[keep].numpy())
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    else:
        w = sp.csr_matrix(weights if per == "source" else weights.T)
        w.sum_duplicates()
        row = np.repeat(np.arange(n), np.diff(w.indptr))
        key = -w.data if signed else -np.abs(w.data)
        order = np.lexsort((w.indices, key, row))  # by row, then weight descending, then id
        rank = np.arange(w.nnz) - w.indptr[row[order]]
        sel = order[(rank < top_m) & (w.data[order] != 0)]
        r, c, v = row[sel], w.indices[sel], w.data[sel]
    if per == "target":
        r, c = c, r
    out = sp.csr_matrix((v, (r, c)), shape=(n, n))
    out.sort_indices()
    return out


class ItemItemModel(ABC):
    """A model whose scores are ``x_u W`` for a user's interaction row x_u and an item-item weight matrix W.

    After ``fit``: ``weights`` is W, a dense ``[n_items, n_items]`` tensor or a scipy CSR matrix (row i = the
    weights from item i); ``train`` is the training CSR (users' seen items); ``item_ids`` / ``user_ids`` map internal
    ids back to the external ids of the fitted ``Interactions`` (None for scipy input).
    """

    _kind = "item_item"

    def __init__(self) -> None:
        self.weights: Tensor | sp.csr_matrix | None = None
        self.train: sp.csr_matrix | None = None
        self.item_ids: np.ndarray | None = None
        self.user_ids: np.ndarray | None = None

    # ------------------------------------------------------------------ fitting helpers
    def _start_fit(self, interactions) -> sp.csr_matrix:
        x = check_interactions(interactions)
        if x.shape[0] == 0 or x.shape[1] == 0 or x.nnz == 0:
            raise ValueError(f"interactions: empty matrix (shape {x.shape}, {x.nnz} entries)")
        self.train = x
        self.item_ids = getattr(interactions, "item_ids", None)
        self.user_ids = getattr(interactions, "user_ids", None)
        return x

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return self.train.shape[1]

    def _check_fitted(self) -> None:
        if self.weights is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() first")

    # ------------------------------------------------------------------ serving
    def _histories(self, users, histories) -> sp.csr_matrix:
        self._check_fitted()
        if histories is not None:
            if users is not None:
                raise ValueError("pass users or histories, not both")
            return check_interactions(histories, "histories", self.n_items)
        if users is None:
            return self.train
        u = np.asarray(users).reshape(-1)
        if u.size and (u.dtype.kind not in "iu" or u.min() < 0 or u.max() >= self.train.shape[0]):
            raise ValueError(f"users: internal user ids in [0, {self.train.shape[0]}) expected, got "
                             f"{u[:10].tolist()}")
        return self.train[u.astype(np.int64)]

    def recommend(self, users=None, k: int = 10, *, histories=None, exclude_seen: bool = True,
                  batch_size: int = 4096) -> tuple[Tensor, Tensor]:
        """Top-k items for users: ``(scores [U, k], item ids int64 [U, k])``, best first (ties: lower id first).

        Args:
            users: internal ids of training users (their training rows are the input); None: all of them.
            k: list length, in [0, n_items].
            histories: instead of users, new interaction rows (``Interactions``, scipy CSR ``[U, n_items]`` or a
                list of item-id lists), e.g. users unseen at fit time.
            exclude_seen: never recommend an item of the input row.
            batch_size: users per kernel call.

        Scores, masking and selection are fused (no ``[U, n_items]`` matrix). Where fewer than k items remain
        the row is padded with (-inf, -1). Map ids to external ids with ``model.item_ids[ids]``.
        """
        x = self._histories(users, histories)
        if not 0 <= k <= self.n_items:
            raise ValueError(f"k must be in [0, n_items={self.n_items}], got {k}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out_s, out_i = [], []
        for start in range(0, max(x.shape[0], 1), batch_size):
            indptr, indices, values = csr_tensors(x[start:start + batch_size])
            if isinstance(self.weights, Tensor):
                s, i = ops.csr_topk_dense(self.weights, indptr, indices, values, k, exclude_seen)
            else:
                w_ptr, w_idx, _ = csr_tensors(self.weights)
                w_val = torch.from_numpy(self.weights.data)
                s, i = ops.csr_topk_sparse(w_ptr, w_idx, w_val, indptr, indices, values, k, exclude_seen)
            out_s.append(s)
            out_i.append(i)
        return torch.cat(out_s), torch.cat(out_i)

    def score(self, users=None, *, histories=None) -> Tensor:
        """Dense scores ``x_u W`` ``[U, n_items]`` (seen items not masked): for evaluation protocols that rank
        themselves, e.g. ``fastrec.evaluate.full_ranking(model.score, test, train)``."""
        x = self._histories(users, histories)
        if isinstance(self.weights, Tensor):
            indptr, indices, values = csr_tensors(x)
            vals = values if values is not None else torch.ones(indices.numel(), dtype=torch.float32)
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                xt = torch.sparse_csr_tensor(indptr, indices.long(), vals.to(self.weights.dtype), x.shape,
                                             check_invariants=False)
                return xt @ self.weights
        return torch.from_numpy((x @ self.weights).toarray())

    def prune(self, top_m: int = 128, per: str = "source") -> ItemItemModel:
        """Keeps at most ``top_m`` weights per item, those of largest magnitude; W becomes a sparse CSR matrix.
        Returns self.

        A user's score for item j is s_j = sum_i x_ui W_ij (the vector of scores is W^T x_u), so an item plays two
        roles, and ``per`` says which one the budget applies to:

        - ``"source"`` (default): row i of W, the weights through which item i of a history scores other items
          (equivalently, column i of the operator W^T that maps a history to scores). Serving then reads exactly
          ``top_m`` weights per history item, and each history item keeps its strongest targets.
        - ``"target"``: column j of W, the weights that score item j (the neighbourhood of j in item kNN).

        On Gowalla with EASE, ``"source"`` kept more of the exact Recall@20 than ``"target"`` at equal budget
        (see the README).
        """
        self._check_fitted()
        self.weights = top_per_item(self.weights, top_m, per)
        return self

    # ------------------------------------------------------------------ persistence
    @abstractmethod
    def _config(self) -> dict:
        """The constructor arguments, JSON-serializable (save/load)."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the model (weights, training rows, ids, settings) to one .npz, atomically."""
        self._check_fitted()
        arrays = _csr_arrays("train", self.train)
        if isinstance(self.weights, Tensor):
            arrays["weights"] = self.weights.numpy()
        else:
            arrays.update(_csr_arrays("weights", self.weights))
        for name in ("item_ids", "user_ids"):
            ids = getattr(self, name)
            if ids is not None:
                arrays[name] = np.asarray(ids)
        atomic_save_npz(path, {"type": self._kind, "config": self._config()}, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ItemItemModel:
        """Reads a model written by :meth:`save`."""
        meta, arrays = read_npz(Path(path))
        if meta.get("type") != cls._kind:
            raise ValueError(f"path: {path} holds a {meta.get('type')!r} model, not {cls._kind!r}")
        model = cls(**meta["config"])
        model.train = _csr_from("train", arrays)
        model.weights = torch.from_numpy(arrays["weights"]) if "weights" in arrays else _csr_from("weights", arrays)
        model.item_ids = arrays.get("item_ids")
        model.user_ids = arrays.get("user_ids")
        return model
