"""Two-tower retrieval (YouTube DNN / sampled-softmax style).

User tower: the user's id vector (``user_ids=True``), plus the mean of the vectors of the user's training items
(``history=True``, YouTube DNN's watch history; the target item is left out of its own example's history), plus
weighted bags of user attributes (``user_ids=False`` with ``history=True`` is YouTube DNN's history-only user
tower); item tower: the item's id vector plus item attribute bags. Each tower has an optional MLP and ends
L2-normalized, so scores are cosines. Training: InfoNCE (softmax cross-entropy) of each positive against the other
positives of the batch (in-batch negatives) and optionally ``n_mixed`` extra negatives drawn by fastrec's sampler
(mixed negative sampling, Yang et al. 2020), logits divided by ``temperature``, and the log-Q correction (Yi et al.,
RecSys 2019): each candidate's logit minus the log of its expected count among the batch's candidates (popularity
for in-batch items, the sampler's rate for the mixed ones). Copies of a batch's positive item are not negatives.

Serving: :meth:`TwoTower.item_vectors` / :meth:`TwoTower.user_vectors` export the towers' outputs; :meth:`build_index`
puts the items in a :mod:`fastrec.retrieval` index (exact or FAISS) and ``recommend(..., index=...)`` searches it
with the seen items excluded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastrec.data import Interactions, NegativeSampler, TripletBatches
from fastrec.models.cf.base import (
    FeatureBags,
    IdTables,
    Recommender,
    as_user_tensor,
    check_positive,
    dense_optimizer,
    fused_optimizer,
    interactions_like,
    progress,
    set_lr,
)
from fastrec.retrieval import ExactIndex, FaissIndex, Index

__all__ = ["TwoTower"]


def _tower(dim: int, layers: Sequence[int]) -> nn.Module:
    mods: list[nn.Module] = []
    widths = (dim, *layers)
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        mods.append(nn.Linear(a, b))
        if k < len(layers) - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class TwoTower(Recommender):
    """Two-tower retrieval model (see the module docstring).

    Args:
        n_users, n_items: id counts.
        dim: embedding width.
        history: add the mean of the user's training-item vectors to the user tower.
        shared_history: the history mean reads the item table (as YouTube DNN / BARS's YoutubeDNN share the
            watched-item and candidate embeddings) instead of a history table of its own.
        user_ids: give each user an id vector in the user tower (False: the tower is built from the history and the
            user attributes only, which need ``history=True`` or ``user_features``).
        user_features, item_features: sparse attribute matrices ``[n_users|n_items, n_values]`` (weighted bags).
        layers: widths of an MLP on top of each tower (empty: none; the last width is the output).
        temperature: softmax temperature of the cosine logits.
        logq: weight of the log-Q correction (True or 1: the full correction; False or 0: none; in between, each
            logit loses that fraction of its log expected count).
        optimizer, lr: fused optimizer of the embedding tables (and torch optimizer of the MLPs).
        init_std: embeddings start N(0, init_std^2).
        seed: initialization seed.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 64,
        *,
        history: bool = True,
        shared_history: bool = False,
        user_ids: bool = True,
        user_features: Any = None,
        item_features: Any = None,
        layers: Sequence[int] = (),
        temperature: float = 0.1,
        logq: float = 1.0,
        optimizer: str = "adagrad",
        lr: float = 0.05,
        init_std: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(n_users, n_items)
        check_positive("dim", dim, integer=True)
        check_positive("temperature", temperature)
        if isinstance(logq, str) or not float(logq) >= 0:
            raise ValueError(f"logq must be a weight >= 0 (or a bool), got {logq!r}")
        if not user_ids and not history and user_features is None:
            raise ValueError("user_ids=False leaves the user tower empty: it needs history=True or user_features")
        if shared_history and not history:
            raise ValueError("shared_history=True needs history=True")
        self.dim, self.history, self.temperature, self.logq = dim, bool(history), float(temperature), float(logq)
        self.user_ids, self.shared_history = bool(user_ids), bool(shared_history)
        self.layers = tuple(int(x) for x in layers)
        self.optimizer_name, self.lr = optimizer, lr
        self.user_bags = FeatureBags(user_features) if user_features is not None else None
        self.item_bags = FeatureBags(item_features) if item_features is not None else None
        specs = {"user": (n_users, dim, ("user",))} if self.user_ids else {}  # tables draw their init in this order
        # a table pools all its features or none: sharing the item table with the history bag makes the candidate
        # lookups bags of one id each
        self._candidate_suffix = "_bag" if self.shared_history else ""
        specs["item"] = (n_items, dim, ("item" + self._candidate_suffix, "neg" + self._candidate_suffix)
                         + (("hist_bag",) if self.shared_history else ()))
        if self.history and not self.shared_history:
            specs["history"] = (n_items, dim, ("hist_bag",))
        if self.user_bags is not None:
            specs["user_attr"] = (self.user_bags.n_values, dim, ("uattr_bag",))
        if self.item_bags is not None:
            specs["item_attr"] = (self.item_bags.n_values, dim, ("iattr_bag", "nattr_bag"))
        torch.manual_seed(seed)
        self.tables = IdTables(specs, fused_optimizer(optimizer, lr), init_std=init_std, seed=seed)
        self.user_mlp = _tower(dim, self.layers)
        self.item_mlp = _tower(dim, self.layers)
        self.register_buffer("log_popularity", torch.zeros(n_items))

    # ---- towers ----
    def _history_bag(self, users: Tensor, drop: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """The users' training items with weights 1/|history| (the item ``drop[b]`` of row b left out)."""
        seen = self.seen
        start = torch.from_numpy(seen.indptr[users.numpy()])
        lengths = torch.from_numpy(np.diff(seen.indptr)[users.numpy()])
        pos = torch.repeat_interleave(start - torch.cumsum(lengths, 0) + lengths, lengths)
        ids = torch.from_numpy(seen.indices)[pos + torch.arange(pos.numel())].long()
        row = torch.repeat_interleave(torch.arange(users.numel()), lengths)
        keep = torch.ones(ids.numel())
        count = lengths.float()
        if drop is not None:
            keep = (ids != drop[row]).float()
            count = torch.zeros(users.numel()).index_add_(0, row, keep)
        return ids, lengths, keep / count.clamp_min(1)[row]

    def _ids(self, users: Tensor | None, items: Tensor | None, neg: Tensor | None, drop: Tensor | None
             ) -> dict[str, Any]:
        ids: dict[str, Any] = {}
        if users is not None:
            if self.user_ids:
                ids["user"] = users
            if self.history:
                ids["hist_bag"] = self._history_bag(users, drop)
            if self.user_bags is not None:
                ids["uattr_bag"] = self.user_bags.bags(users)
        for key, attr, x in (("item", "iattr_bag", items), ("neg", "nattr_bag", neg)):
            if x is not None:
                ids[key + self._candidate_suffix] = ((x, torch.ones_like(x), torch.ones(x.numel()))
                                                     if self.shared_history else x)
                if self.item_bags is not None:
                    ids[attr] = self.item_bags.bags(x)
        return ids

    def _user_tower(self, out: dict[str, Tensor]) -> Tensor:
        v = sum(out[k] for k in ("user", "hist_bag", "uattr_bag") if k in out)
        return F.normalize(self.user_mlp(v), dim=-1)

    def _item_tower(self, out: dict[str, Tensor], key: str, attr: str) -> Tensor:
        v = out[key + self._candidate_suffix]
        if self.item_bags is not None:
            v = v + out[attr]
        return F.normalize(self.item_mlp(v), dim=-1)

    def _tower_vectors(self, users: Tensor | None, items: Tensor | None, block: int = 8192
                       ) -> tuple[Tensor | None, Tensor | None]:
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                u = None if users is None else torch.cat(
                    [self._user_tower(self.tables(self._ids(users[s : s + block], None, None, None)))
                     for s in range(0, users.numel(), block)])
                i = None if items is None else torch.cat(
                    [self._item_tower(self.tables(self._ids(None, items[s : s + block], None, None)), "item",
                                      "iattr_bag") for s in range(0, items.numel(), block)])
        finally:
            self.train(was)
        return u, i

    def user_vectors(self, users: Any = None) -> Tensor:
        """``[B, dim]`` L2-normalized user-tower outputs (all users by default; history from ``fit``'s data)."""
        u = torch.arange(self.n_users) if users is None else as_user_tensor(users, self.n_users)
        if self.history and self.seen is None:
            raise RuntimeError("the user tower reads the users' training items: call fit() (or set_seen) first")
        return self._tower_vectors(u, None)[0]

    def item_vectors(self) -> Tensor:
        """``[n_items, dim]`` L2-normalized item-tower outputs."""
        return self._tower_vectors(None, torch.arange(self.n_items))[1]

    # ---- scoring ----
    @torch.no_grad()
    def score(self, users: Any, items: Any) -> Tensor:
        u, i, shape = self._pairs(users, items)
        uv, iv = self._tower_vectors(u, i)
        return (uv * iv).sum(1).reshape(shape)

    @torch.no_grad()
    def score_all(self, users: Any) -> Tensor:
        return self.user_vectors(users) @ self.item_vectors().T

    def build_index(self, kind: str = "exact", **kwargs: Any) -> Index:
        """The item vectors in a :mod:`fastrec.retrieval` index: ``"exact"`` (:class:`ExactIndex`) or a FAISS kind
        (``"flat"``, ``"ivf"``, ``"hnsw"``; kwargs go to :class:`FaissIndex`). Inner product = cosine here."""
        vectors = self.item_vectors()
        if kind == "exact":
            return ExactIndex(vectors, "ip", **kwargs)
        return FaissIndex(kind, "ip", **kwargs).build(vectors)

    @torch.no_grad()
    def recommend(self, users: Any, k: int = 10, exclude_seen: bool = True, block_size: int = 1024,
                  index: Index | None = None) -> tuple[Tensor, Tensor]:
        """Top-k items per user; with ``index`` (from :meth:`build_index`) the search runs in it."""
        if index is None:
            return super().recommend(users, k, exclude_seen, block_size)
        u = as_user_tensor(users, self.n_users)
        if exclude_seen and self.seen is None:
            raise RuntimeError("exclude_seen=True needs the training interactions: call fit() first")
        scores, ids = index.search(self.user_vectors(u), k, exclude=self.seen[u.numpy()] if exclude_seen else None)
        return scores, ids

    # ---- training ----
    def _batch_logits(self, u: Tensor, cands: Tensor, pos: Tensor, cand_ids: Tensor) -> Tensor:
        """InfoNCE logits ``[b, len(cand_ids)]`` of a batch: cosines / temperature, minus ``logq`` x the log of each
        candidate's expected count among the candidates (the b positives drawn by popularity, the rest uniformly
        by the sampler), with the other copies of a row's positive item masked out."""
        b, m = pos.numel(), cand_ids.numel() - pos.numel()
        logits = (u @ cands.T) / self.temperature
        if self.logq:
            correction = self.log_popularity[pos] + float(np.log(b))
            if m:
                correction = torch.cat([correction, torch.full((m,), float(np.log(m / self.n_items)))])
            logits = logits - self.logq * correction
        same = cand_ids[None, :] == pos[:, None]
        same[torch.arange(b), torch.arange(b)] = False
        return logits.masked_fill(same, -torch.inf)

    def fit(
        self,
        train: Interactions,
        *,
        epochs: int = 20,
        batch_size: int = 4096,
        n_mixed: int = 0,
        lr_decay: float = 1.0,
        seed: int = 0,
        show_progress: bool = True,
        callback: Any = None,
    ) -> TwoTower:
        """InfoNCE over batches of ``train``'s positives with in-batch negatives, plus ``n_mixed`` sampled ones
        (at most ``batch_size``: one per example for the first n_mixed examples, excluding that user's items).

        ``lr_decay``: the learning rate of the tables and of the towers' MLPs is the constructor's ``lr`` times
        ``lr_decay ** epoch`` (each call of ``fit`` starts again from ``lr``); ``callback(model, epoch)`` runs after
        each epoch (e.g. validation)."""
        train = interactions_like(train, self)
        check_positive("epochs", epochs, integer=True)
        check_positive("lr_decay", lr_decay)
        if isinstance(n_mixed, bool) or not isinstance(n_mixed, int) or not 0 <= n_mixed <= batch_size:
            raise ValueError(f"n_mixed must be an int in [0, batch_size={batch_size}], got {n_mixed!r}")
        self.set_seen(train)
        pop = train.item_popularity().astype(np.float64)
        self.log_popularity.copy_(torch.from_numpy(np.log(np.maximum(pop, 1) / train.nnz)).float())
        torch.manual_seed(seed)
        batches = TripletBatches(train, batch_size=batch_size, n_neg=1, seed=seed,
                                 sampler=NegativeSampler(train, seed=seed))
        dense = dense_optimizer(self.optimizer_name,
                                [p for n, p in self.named_parameters() if "tables" not in n], self.lr)
        self.train()
        for epoch in range(epochs):
            set_lr(self.tables.ebc.optimizer, dense, self.lr * lr_decay ** epoch)
            for users, pos, neg in progress(batches, f"epoch {epoch + 1}/{epochs}", show_progress, len(batches)):
                b = users.numel()
                m = min(n_mixed, b)
                neg_ids = neg[:, 0]
                out = self.tables(self._ids(users, pos, neg_ids if m else None, pos))
                u = self._user_tower(out)
                cands = self._item_tower(out, "item", "iattr_bag")
                cand_ids = pos
                if m:
                    cands = torch.cat([cands, self._item_tower(out, "neg", "nattr_bag")[:m]])
                    cand_ids = torch.cat([pos, neg_ids[:m]])
                loss = F.cross_entropy(self._batch_logits(u, cands, pos, cand_ids), torch.arange(b))
                if dense is not None:
                    dense.zero_grad(set_to_none=True)
                loss.backward()
                if dense is not None:
                    dense.step()
            if callback is not None:
                callback(self, epoch)
        set_lr(self.tables.ebc.optimizer, dense, self.lr)
        self.eval()
        return self
