"""Neural collaborative filtering (He et al., WWW 2017): GMF, MLP and NeuMF, trained pointwise with log loss on each
positive and ``n_neg`` sampled negatives (fastrec's numba sampler). NeuMF may start from trained GMF and MLP models
(:meth:`NCF.from_pretrained`, the paper's pretraining, with the output layers mixed by ``alpha``).

BPR-MF, the paper's baseline, is :class:`fastrec.models.cf.MF` with ``biases=False`` trained with ``loss="bpr"``.

Embedding tables live in one fused :class:`fastrec.nn.EmbeddingBagCollection` (lazy Adam by default); the towers are
dense torch layers with torch's Adam. ``score_all`` splits the MLP's first layer into a user part and an item part,
so ranking all items costs one [B, n_items, layers[1]] activation instead of a forward per pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastrec.data import Interactions, NegativeSampler, PointwiseBatches
from fastrec.models.cf.base import (
    IdTables,
    Recommender,
    as_user_tensor,
    check_positive,
    dense_optimizer,
    fused_optimizer,
    interactions_like,
    progress,
)

__all__ = ["NCF"]

KINDS = ("gmf", "mlp", "neumf")


class NCF(Recommender):
    """GMF, MLP or NeuMF.

    Args:
        n_users, n_items: id counts.
        kind: ``"gmf"``, ``"mlp"`` or ``"neumf"``.
        dim: GMF factors (the predictive factors of the paper).
        layers: MLP widths; ``layers[0]`` is the concatenated user + item embedding (each ``layers[0] // 2``), the
            last is the MLP's output (the paper's [64, 32, 16, 8] style).
        dropout: dropout between MLP layers.
        optimizer, lr: the fused optimizer of the embedding tables and the torch optimizer of the dense layers.
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
            specs["item_gmf"] = (n_items, dim, ("item_g",))
        if kind != "gmf":
            specs["user_mlp"] = (n_users, layers[0] // 2, ("user_m",))
            specs["item_mlp"] = (n_items, layers[0] // 2, ("item_m",))
            mods: list[nn.Module] = []
            for a, b in zip(layers[:-1], layers[1:]):
                mods += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
            self.mlp = nn.Sequential(*mods)
        self.tables = IdTables(specs, fused_optimizer(optimizer, lr), init_std=init_std, seed=seed)
        width = (dim if kind != "mlp" else 0) + (layers[-1] if kind != "gmf" else 0)
        self.output = nn.Linear(width, 1)

    def _ids(self, users: Tensor, items: Tensor) -> dict[str, Tensor]:
        ids = {}
        if self.kind != "mlp":
            ids.update(user_g=users, item_g=items)
        if self.kind != "gmf":
            ids.update(user_m=users, item_m=items)
        return ids

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """Logits of (user, item) pairs [N]."""
        out = self.tables(self._ids(users, items))
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
    def score_all(self, users: Any, block: int = 32) -> Tensor:
        u = as_user_tensor(users, self.n_users)
        was = self.training
        self.eval()
        try:
            w_out = self.output.weight[0]
            out = torch.full((u.numel(), self.n_items), float(self.output.bias))
            if self.kind != "mlp":
                p = self.tables.weight("user_gmf")[u] * w_out[: self.dim]
                out += p @ self.tables.weight("item_gmf").T
            if self.kind != "gmf":
                first = self.mlp[0]
                half = self.layers[0] // 2
                item_part = self.tables.weight("item_mlp") @ first.weight[:, half:].T  # [n_items, L1]
                user_part = self.tables.weight("user_mlp")[u] @ first.weight[:, :half].T + first.bias
                rest = self.mlp[1:]
                w_mlp = w_out[-self.layers[-1]:]
                for s in range(0, u.numel(), block):
                    h = rest(user_part[s : s + block, None, :] + item_part[None])  # [b, n_items, L_last]
                    out[s : s + block] += h @ w_mlp
            return out
        finally:
            self.train(was)

    def fit(
        self,
        train: Interactions,
        *,
        epochs: int = 20,
        batch_size: int = 4096,
        n_neg: int = 4,
        seed: int = 0,
        show_progress: bool = True,
        callback: Any = None,
    ) -> NCF:
        """Log loss on every positive of ``train`` and ``n_neg`` uniform negatives each (resampled every epoch)."""
        train = interactions_like(train, self)
        check_positive("epochs", epochs, integer=True)
        self.set_seen(train)
        torch.manual_seed(seed)
        batches = PointwiseBatches(train, batch_size=batch_size, n_neg=n_neg, seed=seed,
                                   sampler=NegativeSampler(train, seed=seed))
        dense = dense_optimizer(self.optimizer_name, [p for n, p in self.named_parameters() if "tables" not in n],
                                self.lr)
        self.train()
        for epoch in range(epochs):
            for u, i, y in progress(batches, f"epoch {epoch + 1}/{epochs}", show_progress, len(batches)):
                loss = F.binary_cross_entropy_with_logits(self(u, i), y)
                dense.zero_grad(set_to_none=True)
                loss.backward()
                dense.step()
            if callback is not None:
                callback(self, epoch)
        self.eval()
        return self

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
