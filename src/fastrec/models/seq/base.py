"""The interface every sequential model shares: scoring, top-k recommendation, exact save/load, and ``fit``.

A model maps a history (its items in time order) to a vector ``h`` and scores item i as ``h . W[i] + b[i]`` with the
output item vectors ``W`` (and bias ``b``, where the model has one). Subclasses implement :meth:`encode` and
:meth:`output_vectors`, plus the two training hooks ``_batches`` and ``_loss`` that :mod:`fastrec.models.seq.train`
drives. A model with user embeddings (``n_users > 0``, e.g. Caser) also reads the user id of each history: the
inference methods take ``users=`` (ignored by the models without user embeddings).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fastrec._atomic import atomic_open
from fastrec.models.seq._sequences import as_jagged, as_padded, check_int, pad_left

__all__ = ["SequentialRecommender", "load"]

_FORMAT = 1
_REGISTRY: dict[str, type[SequentialRecommender]] = {}


class SequentialRecommender(nn.Module):
    """Base class: ``score``, ``recommend``, ``save``/``load`` and ``fit`` over the subclass's encoder.

    Histories are accepted in every form :func:`fastrec.models.seq._sequences.as_jagged` takes: a left- or
    right-padded 2-D array/tensor of internal item ids with -1 padding (``Interactions.padded_sequences``), a list
    of sequences, or jagged ``(offsets, items)``. Only the last ``max_len`` items of a history are read.
    """

    n_items: int
    max_len: int
    n_users: int = 0  # > 0: the model has user embeddings and its inference needs ``users``

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        for name in ("n_items", "max_len"):
            check_int(name, config[name])
        self.config = dict(config)
        self.n_items = int(config["n_items"])
        self.max_len = int(config["max_len"])

    # ------------------------------------------------------------------ subclass hooks
    def encode(self, seqs: Tensor) -> Tensor:
        """[B, L] left-padded internal ids (-1 padding) -> [B, dim] history vectors (models with user embeddings
        take ``encode(seqs, users)``, ``users`` int64 [B])."""
        raise NotImplementedError

    def output_vectors(self) -> tuple[Tensor, Tensor | None]:
        """(item vectors [n_items, dim], item bias [n_items] or None)."""
        raise NotImplementedError

    def _batches(self, data: Any, batch_size: int, epoch: int, seed: int) -> Iterator[Any]:
        raise NotImplementedError

    def _loss(self, batch: Any) -> tuple[Tensor, int]:
        """(mean loss of the batch, number of training sequences it holds)."""
        raise NotImplementedError

    def _prepare(self, train: Any) -> Any:
        """Training data from ``fit``'s ``train`` argument, ready for ``_batches``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ inference
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _padded(self, histories: Any) -> Tensor:
        return as_padded(histories, self.max_len, self.n_items).to(self.device)

    def _user_ids(self, users: Any, n: int) -> np.ndarray | None:
        """``users`` checked as n user ids (int64) for a model with user embeddings; None for the others."""
        if not self.n_users:
            return None
        if users is None:
            raise ValueError(f"{type(self).__name__} has user embeddings (n_users={self.n_users}): pass users=, "
                             "the user id of each history")
        u = np.asarray(users.detach().cpu() if isinstance(users, Tensor) else users)
        if u.ndim != 1 or u.size != n or (u.size and u.dtype.kind not in "iu"):
            raise ValueError(f"users must be a 1-D array of {n} integer ids (one per history), got shape {u.shape} "
                             f"and dtype {u.dtype}")
        u = u.astype(np.int64, copy=False)
        if u.size and (u.min() < 0 or u.max() >= self.n_users):
            raise ValueError(f"users: id out of range [0, {self.n_users}): min {int(u.min())}, max {int(u.max())}")
        return u

    def _history_vectors(self, histories: Any, users: Any) -> Tensor:
        """``encode`` of the histories, with their user ids when the model has user embeddings."""
        seqs = self._padded(histories)
        u = self._user_ids(users, seqs.shape[0])
        return self.encode(seqs) if u is None else self.encode(seqs, torch.from_numpy(u).to(self.device))

    def _inference(self, fn: Callable[[], Tensor]) -> Tensor:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return fn()
        finally:
            self.train(was_training)

    def full_scores(self, histories: Any, *, users: Any = None) -> Tensor:
        """Scores of every item for each history: [B, n_items] float32. ``users``: the user id of each history,
        needed by models with user embeddings (``n_users > 0``), ignored by the others."""
        def run() -> Tensor:
            w, b = self.output_vectors()
            s = self._history_vectors(histories, users) @ w.t()
            return s if b is None else s + b
        return self._inference(run)

    def score(self, histories: Any, items: Any, *, users: Any = None) -> Tensor:
        """Scores of the given items: ``items`` int [B, C] (candidates per history) or [C] (the same for all);
        returns [B, C] float32. ``users`` as in :meth:`full_scores`."""
        items = torch.as_tensor(items, dtype=torch.long)
        if items.dim() not in (1, 2):
            raise ValueError(f"items must be 1-D or 2-D, got shape {tuple(items.shape)}")
        if items.numel() and (int(items.min()) < 0 or int(items.max()) >= self.n_items):
            raise ValueError(f"items: id out of range [0, {self.n_items}): min {int(items.min())}, "
                             f"max {int(items.max())}")

        def run() -> Tensor:
            h = self._history_vectors(histories, users)
            it = items.to(h.device)
            if it.dim() == 1:
                it = it.expand(h.shape[0], -1)
            elif it.shape[0] != h.shape[0]:
                raise ValueError(f"items has {it.shape[0]} rows for {h.shape[0]} histories")
            w, b = self.output_vectors()
            s = torch.einsum("bd,bcd->bc", h, w[it])
            return s if b is None else s + b[it]
        return self._inference(run)

    def recommend(self, histories: Any, k: int = 10, *, users: Any = None, exclude_history: bool = True,
                  block_size: int = 1024) -> tuple[Tensor, Tensor]:
        """Top-``k`` items for each history, best first: (scores [B, k] float32, items [B, k] int64). With
        ``exclude_history`` the items of each (whole) history are never recommended. ``users`` as in
        :meth:`full_scores`."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.n_items:
            raise ValueError(f"k must be an integer in [1, n_items={self.n_items}], got {k!r}")
        offsets, items = as_jagged(histories)
        users = self._user_ids(users, offsets.size - 1)
        out_s, out_i = [], []
        for start in range(0, offsets.size - 1, block_size):
            rows = np.arange(start, min(start + block_size, offsets.size - 1))
            sub_off = offsets[start:rows[-1] + 2] - offsets[start]
            sub_items = items[offsets[start]:offsets[rows[-1] + 1]]
            s = self.full_scores((sub_off, sub_items), users=None if users is None else users[rows])
            if exclude_history and sub_items.size:
                r = torch.from_numpy(np.repeat(np.arange(rows.size), np.diff(sub_off))).to(s.device)
                s[r, torch.from_numpy(sub_items).to(s.device)] = float("-inf")
            top = torch.topk(s, k, dim=1)
            out_s.append(top.values)
            out_i.append(top.indices)
        if not out_s:
            return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long)
        return torch.cat(out_s), torch.cat(out_i)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the constructor arguments and the weights to ``path`` atomically (a temporary file in the same
        folder, then renamed over ``path``)."""
        path = Path(path)
        payload = {"format": _FORMAT, "class": type(self).__name__, "config": self.config,
                   "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}
        with atomic_open(path) as f:
            torch.save(payload, f)

    @classmethod
    def load(cls, path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> SequentialRecommender:
        """A model saved by :meth:`save`, with identical weights (called on a subclass, the file must hold one)."""
        payload = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"{str(path)!r} is not a fastrec sequential model file")
        name = payload["class"]
        if name not in _REGISTRY:
            raise ValueError(f"{str(path)!r} holds an unknown model class {name!r}")
        model_cls = _REGISTRY[name]
        if not issubclass(model_cls, cls):
            raise TypeError(f"{str(path)!r} holds a {name}, not a {cls.__name__}")
        model = model_cls(**payload["config"])
        model.load_state_dict(payload["state_dict"])
        return model.to(map_location)

    # ------------------------------------------------------------------ training
    def fit(self, train: Any, **kwargs: Any) -> Any:
        """Trains on ``train`` (see the subclass) with :func:`fastrec.models.seq.train.fit`; keyword arguments go
        there (epochs, batch_size, lr, valid, patience, seed, checkpoint, ...). Returns its ``FitResult``."""
        from fastrec.models.seq.train import fit

        return fit(self, self._prepare(train), **kwargs)


def load(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> SequentialRecommender:
    """Loads any model saved by :meth:`SequentialRecommender.save`."""
    return SequentialRecommender.load(path, map_location)


def padded_rows(offsets: np.ndarray, items: np.ndarray, rows: np.ndarray, max_len: int,
                ends: np.ndarray | None = None) -> Tensor:
    """Trimmed left-padded batch of the given rows of jagged sequences (cut at ``ends``, see ``pad_left``), as a
    tensor."""
    return torch.from_numpy(pad_left(offsets, items, max_len, rows, trim=True, ends=ends))
