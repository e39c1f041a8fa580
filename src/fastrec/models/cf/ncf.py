"""Neural collaborative filtering (He et al., WWW 2017): GMF, MLP and NeuMF, trained pointwise with log loss on each
positive and ``n_neg`` sampled negatives (fastrec's numba sampler), or against ``shared_neg`` negatives that every
positive of a batch shares; or pairwise with BPR (``loss="bpr"``, as NGCF trains its NeuMF baseline). NeuMF may
start from trained GMF and MLP models (:meth:`NCF.from_pretrained`, the paper's pretraining, with the output layers
mixed by ``alpha``).

BPR-MF, the paper's baseline, is :class:`fastrec.models.cf.MF` with ``biases=False`` trained with ``loss="bpr"``.

Embedding tables live in one fused :class:`fastrec.nn.EmbeddingBagCollection` (lazy Adam by default, or Adam on
every row: ``optimizer="dense_adam"``); the towers are dense torch layers with torch's Adam. ``score_all`` and the
shared-negative loss split the MLP's first layer into a user part and an item part, so B users x N items cost one
[B, N, layers[1]] activation instead of a forward per pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastrec.data import Interactions, NegativeSampler, PointwiseBatches, TripletBatches
from fastrec.models.cf.base import (
    IdTables,
    Recommender,
    accidental_positives,
    as_user_tensor,
    check_positive,
    dense_optimizer,
    entry_batches,
    fused_optimizer,
    interactions_like,
    progress,
)

__all__ = ["NCF"]

KINDS = ("gmf", "mlp", "neumf")
LOSSES = ("log", "bpr")
_PART = {"g": "gmf", "m": "mlp"}  # feature suffix -> table suffix


class NCF(Recommender):
    """GMF, MLP or NeuMF.

    Args:
        n_users, n_items: id counts.
        kind: ``"gmf"``, ``"mlp"`` or ``"neumf"``.
        dim: GMF factors (the predictive factors of the paper).
        layers: MLP widths; ``layers[0]`` is the concatenated user + item embedding (each ``layers[0] // 2``), the
            last is the MLP's output (the paper's [64, 32, 16, 8] style).
        dropout: dropout between MLP layers.
        optimizer, lr: the fused optimizer of the embedding tables and the torch optimizer of the dense layers
            (``"adam"``: lazy Adam on the tables, the rows a step touches; ``"dense_adam"``: Adam on every row
            each step, as the paper's Keras Adam; it learned faster on Gowalla, see the README).
        init_std: embeddings start N(0, init_std^2) (the paper's 0.01).
        seed: initialization seed.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        kind: str = "neumf",
        dim: int = 32,
        layers: Sequence[int] = (64, 32, 16, 8),
        *,
        dropout: float = 0.0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        init_std: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__(n_users, n_items)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        layers = tuple(int(x) for x in layers)
        if kind != "gmf" and (len(layers) < 2 or layers[0] % 2 or min(layers) < 1):
            raise ValueError(f"layers must list >= 2 positive widths with an even first one, got {layers}")
        check_positive("dim", dim, integer=True)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.kind, self.dim, self.layers, self.optimizer_name, self.lr = kind, dim, layers, optimizer, lr
        torch.manual_seed(seed)
        specs = {}
        if kind != "mlp":
            specs["user_gmf"] = (n_users, dim, ("user_g",))
            specs["item_gmf"] = (n_items, dim, ("item_g", "neg_g"))
        if kind != "gmf":
            specs["user_mlp"] = (n_users, layers[0] // 2, ("user_m",))
            specs["item_mlp"] = (n_items, layers[0] // 2, ("item_m", "neg_m"))
            mods: list[nn.Module] = []
            for a, b in zip(layers[:-1], layers[1:]):
                mods += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
            self.mlp = nn.Sequential(*mods)
        self.tables = IdTables(specs, fused_optimizer(optimizer, lr), init_std=init_std, seed=seed)
        width = (dim if kind != "mlp" else 0) + (layers[-1] if kind != "gmf" else 0)
        self.output = nn.Linear(width, 1)

    def _parts(self) -> tuple[str, ...]:
        """The embedding parts of this kind: ``"g"`` (GMF), ``"m"`` (MLP)."""
        return {"gmf": ("g",), "mlp": ("m",), "neumf": ("g", "m")}[self.kind]

    def _ids(self, users: Tensor, items: Tensor) -> dict[str, Tensor]:
        return {f"{side}_{k}": ids for k in self._parts() for side, ids in (("user", users), ("item", items))}

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """Logits of (user, item) pairs [N]."""
        return self._logits(self.tables(self._ids(users, items)))

    def _logits(self, out: dict[str, Tensor]) -> Tensor:
        """Logits of the looked-up (user, item) pairs."""
        parts = []
        if self.kind != "mlp":
            parts.append(out["user_g"] * out["item_g"])
        if self.kind != "gmf":
            parts.append(self.mlp(torch.cat([out["user_m"], out["item_m"]], 1)))
        return self.output(torch.cat(parts, 1)).squeeze(1)

    @torch.no_grad()
    def score(self, users: Any, items: Any) -> Tensor:
        """Logits of (user, item) pairs."""
        u, i, shape = self._pairs(users, items)
        was = self.training
        self.eval()
        try:
            return self(u, i).reshape(shape)
        finally:
            self.train(was)

    @torch.no_grad()
    def score_all(self, users: Any, block: int = 4) -> Tensor:
        """Logits of every item for ``users`` [B, n_items]; ``block`` users share one [block, n_items, layers[1]]
        MLP activation (small blocks stay in cache: 4 scored Gowalla's 41k items about 3x faster than 32)."""
        u = as_user_tensor(users, self.n_users)
        was = self.training
        self.eval()
        try:
            return self._grid({k: self.tables.weight(f"user_{_PART[k]}")[u] for k in self._parts()},
                              {k: self.tables.weight(f"item_{_PART[k]}") for k in self._parts()}, block)
        finally:
            self.train(was)

    def _grid(self, user: dict[str, Tensor], item: dict[str, Tensor], block: int | None = None) -> Tensor:
        """Logits [B, N] of every (user, item) pair from the users' and the items' embeddings (``"g"``: GMF,
        ``"m"``: MLP). The GMF part is one matrix product; the MLP's first layer is split into a user part and an
        item part, so each block of ``block`` users (None: all at once) costs one [block, N, layers[1]] activation
        of the remaining layers."""
        w_out = self.output.weight[0]
        logits = self.output.bias
        if self.kind != "mlp":
            logits = logits + (user["g"] * w_out[: self.dim]) @ item["g"].T
        if self.kind != "gmf":
            first, rest = self.mlp[0], self.mlp[1:]
            half = self.layers[0] // 2
            item_part = item["m"] @ first.weight[:, half:].T  # [N, L1]
            user_part = user["m"] @ first.weight[:, :half].T + first.bias  # [B, L1]
            w_mlp = w_out[-self.layers[-1]:]
            step = block or max(user_part.shape[0], 1)
            parts = [rest(user_part[s : s + step, None, :] + item_part[None]) @ w_mlp
                     for s in range(0, user_part.shape[0], step)]
            logits = logits + (torch.cat(parts) if parts else item_part.new_zeros(0, item_part.shape[0]))
        return logits

    def fit(
        self,
        train: Interactions,
        *,
        epochs: int = 20,
        batch_size: int = 4096,
        n_neg: int | None = None,
        shared_neg: int = 0,
        reg: float = 0.0,
        loss: str = "log",
        seed: int = 0,
        show_progress: bool = True,
        callback: Any = None,
    ) -> NCF:
        """Log loss on every positive of ``train`` and ``n_neg`` uniform negatives each (default 4; resampled every
        epoch), averaged over the batch's B * (1 + n_neg) examples. ``reg``: L2 weight on the embedding rows each
        example touches (``0.5 * reg * (|user rows|^2 + |item rows|^2)`` per example, averaged like the log loss).

        ``shared_neg = N > 0``: each batch of ``batch_size`` positives draws N uniform negatives that all its
        positives share instead; every positive's negative term is ``n_neg`` times the mean of its N negative log
        losses (a negative that is one of the user's train items, the positive included, contributes 0), so the
        objective has the per-pair one's expectation with far less noise. The B x N logits come from
        :meth:`_grid` (one [B, N, layers[1]] MLP activation, the N rows looked up once), so hundreds of negatives
        per positive cost what a few per-pair ones do; the regularizer is averaged the same way (per positive: its
        user rows 1 + n_neg times, its item rows once, each negative's rows ``n_neg / N`` times).

        ``loss="bpr"``: ``softplus(s_neg - s_pos)`` per (positive, negative) pair instead, averaged over the pairs
        (``n_neg`` per positive, default 1), with ``0.5 * reg * (|user|^2 + |item|^2 + |negative|^2)`` per pair.
        With ``shared_neg = N`` each positive's term is the mean over its N pairs (accidental positives again 0)
        and ``n_neg`` must be left unset. ``callback(model, epoch)`` runs after each epoch."""
        train = interactions_like(train, self)
        check_positive("epochs", epochs, integer=True)
        check_positive("batch_size", batch_size, integer=True)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if loss == "bpr" and shared_neg and n_neg is not None:
            raise ValueError(f"loss='bpr' with shared_neg > 0 pairs each positive with the shared negatives: leave "
                             f"n_neg unset, got {n_neg!r}")
        n_neg = (1 if loss == "bpr" else 4) if n_neg is None else n_neg
        check_positive("n_neg", n_neg, integer=True)
        if not reg >= 0:
            raise ValueError(f"reg must be >= 0, got {reg!r}")
        if isinstance(shared_neg, bool) or not isinstance(shared_neg, (int, np.integer)) or shared_neg < 0:
            raise ValueError(f"shared_neg must be an int >= 0, got {shared_neg!r}")
        self.set_seen(train)
        torch.manual_seed(seed)
        if shared_neg:
            rng = np.random.default_rng(seed)
            users_all = torch.from_numpy(train.rowids().astype(np.int64))
            items_all = torch.from_numpy(train.indices.astype(np.int64))
            n_batches = -(-train.nnz // batch_size)
        else:
            batches = (TripletBatches if loss == "bpr" else PointwiseBatches)(
                train, batch_size=batch_size, n_neg=n_neg, seed=seed, sampler=NegativeSampler(train, seed=seed))
            n_batches = len(batches)
        dense = dense_optimizer(self.optimizer_name, [p for n, p in self.named_parameters() if "tables" not in n],
                                self.lr)
        self.train()
        for epoch in range(epochs):
            if shared_neg:
                steps = ((users_all[b], items_all[b]) for b in map(torch.from_numpy,
                                                                    entry_batches(train.nnz, batch_size, rng)))
            else:
                steps = iter(batches)
            for step in progress(steps, f"epoch {epoch + 1}/{epochs}", show_progress, n_batches):
                if shared_neg:
                    u, i = step
                    neg = torch.from_numpy(rng.integers(0, self.n_items, shared_neg))
                    objective = self._shared_loss(u, i, neg, n_neg, reg, train, loss)
                elif loss == "bpr":
                    objective = self._pairwise_loss(*step, reg)
                else:
                    u, i, y = step
                    out = self.tables(self._ids(u, i))
                    objective = F.binary_cross_entropy_with_logits(self._logits(out), y)
                    if reg:
                        objective = objective + 0.5 * reg * sum(v.square().sum() for v in out.values()) / u.numel()
                dense.zero_grad(set_to_none=True)
                objective.backward()
                dense.step()
            if callback is not None:
                callback(self, epoch)
        self.eval()
        return self

    def _pairwise_loss(self, users: Tensor, items: Tensor, neg: Tensor, reg: float) -> Tensor:
        """The per-pair BPR objective of :meth:`fit` for positives (users, items) [B] and negatives neg [B, n_neg],
        all rows in one lookup."""
        b, n_neg = neg.shape
        out = self.tables({**self._ids(users, items), **{f"neg_{k}": neg for k in self._parts()}})
        pairs = {}
        for k in self._parts():
            pairs[f"user_{k}"] = out[f"user_{k}"].repeat_interleave(n_neg, 0)
            pairs[f"item_{k}"] = out[f"neg_{k}"].reshape(b * n_neg, -1)
        margin = self._logits(pairs).view(b, n_neg) - self._logits(out)[:, None]
        total = F.softplus(margin).sum()
        if reg:  # per pair: its user, positive and negative rows
            total = total + 0.5 * reg * sum((1 if k.startswith("neg") else n_neg) * v.square().sum()
                                            for k, v in out.items())
        return total / (b * n_neg)

    def _shared_loss(self, users: Tensor, items: Tensor, neg: Tensor, n_neg: int, reg: float,
                     train: Interactions, loss: str) -> Tensor:
        """The shared-negative objective of :meth:`fit` for positives (users, items) [B] and negatives neg [N]."""
        out = self.tables(self._ids(users, items), shared={f"neg_{k}": neg for k in self._parts()})
        pos = self._logits(out)
        grid = self._grid({k: out[f"user_{k}"] for k in self._parts()}, {k: out[f"neg_{k}"] for k in self._parts()})
        bpr = loss == "bpr"
        terms = F.softplus(grid - pos[:, None] if bpr else grid)  # BPR of each pair, or the log loss of label 0
        hits = accidental_positives(train.indptr, train.indices, users.numpy(), neg.numpy(), self.n_items)
        terms = terms.view(-1).index_fill(0, torch.from_numpy(hits), 0.0)
        # per positive, BPR: the mean over its N pairs (one example); log loss: its own term + n_neg x the mean
        # negative term (1 + n_neg examples)
        neg_weight, per_positive = (1, 1) if bpr else (n_neg, 1 + n_neg)
        total = terms.sum() * (neg_weight / neg.numel())
        if not bpr:
            total = total + F.softplus(-pos).sum()
        if reg:
            weight = {"user": per_positive, "item": 1.0, "neg": neg_weight * users.numel() / neg.numel()}
            total = total + 0.5 * reg * sum(weight[k.split("_")[0]] * v.square().sum() for k, v in out.items())
        return total / (users.numel() * per_positive)

    @classmethod
    def from_pretrained(cls, gmf: NCF, mlp: NCF, alpha: float = 0.5, **kwargs: Any) -> NCF:
        """NeuMF initialized from a trained GMF and a trained MLP (the paper's pretraining): their embeddings and
        layers are copied, and the output layer is ``[alpha * h_gmf, (1 - alpha) * h_mlp]``. ``kwargs`` go to the
        constructor (e.g. ``optimizer="sgd"``, as the paper fine-tunes with SGD)."""
        if gmf.kind != "gmf" or mlp.kind != "mlp":
            raise ValueError(f"need a 'gmf' and an 'mlp' model, got {gmf.kind!r} and {mlp.kind!r}")
        if (gmf.n_users, gmf.n_items) != (mlp.n_users, mlp.n_items):
            raise ValueError("gmf and mlp must share the id space")
        model = cls(gmf.n_users, gmf.n_items, "neumf", gmf.dim, mlp.layers, **kwargs)
        with torch.no_grad():
            for name, src in (("user_gmf", gmf), ("item_gmf", gmf), ("user_mlp", mlp), ("item_mlp", mlp)):
                model.tables.weight(name).copy_(src.tables.weight(name))
            model.mlp.load_state_dict(mlp.mlp.state_dict())
            model.output.weight.copy_(torch.cat([alpha * gmf.output.weight, (1 - alpha) * mlp.output.weight], 1))
            model.output.bias.copy_(alpha * gmf.output.bias + (1 - alpha) * mlp.output.bias)
        model.seen = gmf.seen
        return model
