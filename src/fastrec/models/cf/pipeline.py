"""A two-stage recommender: candidate generation, then ranking of the candidates, as one object.

Stage 1, the retriever, is anything with ``recommend(users, k, exclude_seen=...) -> (scores [B, k], items [B, k])``
padded with item -1: a :class:`TwoTower` (exact or through a FAISS index, ``retriever_kwargs={"index": ...}``),
``fastrec.linear.EASE``, or any :class:`Recommender`. Stage 2, the ranker, scores (user, item) pairs:

- a :class:`Recommender` (its ``score(users, items)``), or
- a CTR model (a ``torch.nn.Module`` returning logits, e.g. ``fastrec.models.ctr.DeepFM``) together with
  ``features(users [N], items [N]) -> batch``, the function that builds the model's input for the pairs (user and
  item fields, side features), or
- any callable ``(users [N], items [N]) -> scores [N]``.

``recommend(users, k)`` returns the ranker's top-k among the retriever's ``n_candidates``, seen items excluded by the
retriever. ``save(folder)`` writes both stages (each with its own ``save``) and the settings; ``load(folder,
features=...)`` reads them back (the feature function is code, so it is passed again).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fastrec._atomic import write_text_atomically
from fastrec.models.cf.base import Recommender, as_user_tensor, check_positive

__all__ = ["TwoStage"]


def _loader_name(obj: Any) -> str:
    """How to read a saved stage back: ``module:function`` (returns the object, or a tuple whose first entry is)."""
    if isinstance(obj, Recommender):
        return "fastrec.models.cf.base:load_model"
    if callable(getattr(type(obj), "load", None)):
        return f"{type(obj).__module__}:{type(obj).__qualname__}.load"
    module = type(obj).__module__
    package = module.rsplit(".", 1)[0]
    if hasattr(importlib.import_module(package), "load_model"):
        return f"{package}:load_model"
    raise TypeError(f"cannot save a {type(obj).__name__}: it has no load() and its package no load_model()")


def _load_with(name: str, path: Path) -> Any:
    module, attr = name.split(":")
    fn: Any = importlib.import_module(module)
    for part in attr.split("."):
        fn = getattr(fn, part)
    out = fn(path)
    return out[0] if isinstance(out, tuple) else out


class TwoStage:
    """Retriever + ranker (see the module docstring).

    Args:
        retriever: stage 1 (``recommend(users, k, exclude_seen=...)``).
        ranker: stage 2: a Recommender, a CTR model with ``features``, or a callable.
        n_candidates: items retrieved per user and ranked.
        features: for a CTR-model ranker, ``(users, items) -> model input``.
        retriever_kwargs: extra arguments of the retriever's ``recommend`` (e.g. ``{"index": faiss_index}``).
        block_size: users per ranking call.
    """

    def __init__(self, retriever: Any, ranker: Any, *, n_candidates: int = 100,
                 features: Callable[[Tensor, Tensor], Any] | None = None,
                 retriever_kwargs: dict[str, Any] | None = None, block_size: int = 256) -> None:
        if not callable(getattr(retriever, "recommend", None)):
            raise TypeError(f"retriever must have recommend(users, k, exclude_seen=...), got "
                            f"{type(retriever).__name__}")
        check_positive("n_candidates", n_candidates, integer=True)
        check_positive("block_size", block_size, integer=True)
        if isinstance(ranker, nn.Module) and not isinstance(ranker, Recommender) and features is None:
            raise ValueError("a CTR-model ranker needs features=(users, items) -> its input batch")
        if not (isinstance(ranker, Recommender) or callable(ranker)):
            raise TypeError(f"ranker must be a Recommender, a CTR model or a callable, got {type(ranker).__name__}")
        self.retriever, self.ranker, self.features = retriever, ranker, features
        self.n_candidates, self.block_size = int(n_candidates), int(block_size)
        self.retriever_kwargs = dict(retriever_kwargs or {})

    @torch.no_grad()
    def rank(self, users: Tensor, items: Tensor) -> Tensor:
        """The ranker's scores of (user, item) pairs [N] (float32)."""
        if isinstance(self.ranker, Recommender):
            return self.ranker.score(users, items).float()
        if self.features is not None:
            was = self.ranker.training
            self.ranker.eval()
            try:
                out = self.ranker(self.features(users, items))
            finally:
                self.ranker.train(was)
            return out.reshape(-1).float() if out.dim() == 1 or out.shape[-1] == 1 else out[:, 0].float()
        return torch.as_tensor(self.ranker(users, items)).reshape(-1).float()

    @torch.no_grad()
    def recommend(self, users: Any, k: int = 10, exclude_seen: bool = True) -> tuple[Tensor, Tensor]:
        """``(scores [B, k], items [B, k])``: the ranker's best k of each user's candidates (padded with -inf / -1
        where fewer candidates exist)."""
        n_users = getattr(self.retriever, "n_users", None)  # else the retriever checks the ids
        u = as_user_tensor(users, int(n_users) if n_users is not None else np.iinfo(np.int64).max)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.n_candidates:
            raise ValueError(f"k must be an int in [1, n_candidates={self.n_candidates}], got {k!r}")
        out_s, out_i = [], []
        for s in range(0, u.numel(), self.block_size):
            ub = u[s : s + self.block_size]
            _, cands = self.retriever.recommend(ub, self.n_candidates, exclude_seen=exclude_seen,
                                                **self.retriever_kwargs)
            cands = cands.long()
            valid = cands >= 0
            scores = torch.full(cands.shape, -torch.inf)
            pair_u = ub[:, None].expand_as(cands)[valid]
            if pair_u.numel():
                scores[valid] = self.rank(pair_u, cands[valid])
            top, pos = torch.topk(scores, k, dim=1)
            items = cands.gather(1, pos)
            out_s.append(top)
            out_i.append(torch.where(torch.isneginf(top), -1, items))
        return torch.cat(out_s), torch.cat(out_i)

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Writes ``retriever.pt``, ``ranker.pt`` (each stage's own save) and ``pipeline.json`` into ``folder``."""
        p = Path(folder)
        p.mkdir(parents=True, exist_ok=True)
        if not hasattr(self.ranker, "save"):
            raise TypeError(f"the ranker ({type(self.ranker).__name__}) has no save(); save it yourself")
        self.retriever.save(p / "retriever.pt")
        self.ranker.save(p / "ranker.pt")
        meta = {"retriever": _loader_name(self.retriever), "ranker": _loader_name(self.ranker),
                "n_candidates": self.n_candidates, "block_size": self.block_size}
        write_text_atomically(p / "pipeline.json", json.dumps(meta))

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, features: Callable[[Tensor, Tensor], Any] | None = None,
             retriever_kwargs: dict[str, Any] | None = None) -> TwoStage:
        """Reads a pipeline written by :meth:`save` (pass the same ``features`` function again)."""
        p = Path(folder)
        meta = json.loads((p / "pipeline.json").read_text())
        return cls(_load_with(meta["retriever"], p / "retriever.pt"), _load_with(meta["ranker"], p / "ranker.pt"),
                   n_candidates=meta["n_candidates"], features=features, retriever_kwargs=retriever_kwargs,
                   block_size=meta["block_size"])
