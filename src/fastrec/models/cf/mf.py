"""Matrix factorization, the classic series in one configurable model.

``MF`` scores ``mu + b_u + b_i + <p_u, q_i>`` with every part optional or extended:

- vanilla MF (``biases=False``) and biased MF (Surprise's SVD, Koren's "baseline + factors");
- side features (``user_features`` / ``item_features``: sparse ``[n, n_values]`` attribute matrices): each attribute
  value has a vector and a bias, added (weighted) to the user's / item's own (Koren's implicit/attribute terms,
  LightFM's sum of feature embeddings);
- temporal features (``time_bins > 0``, timeSVD-style): an item bias per time bin ``b_{i,bin(t)}`` and a user bias
  drift ``alpha_u * dev_u(t)``, ``dev_u(t) = sign(t - t_u) |t - t_u|^0.4`` in days around the user's mean date
  (scaled by the training span^0.4 into [-1, 1]);
- mixture of tastes (``tastes = T > 1``, Kula 2017): T taste vectors and T attention vectors per user, score
  ``sum_t softmax_t(<a_ut, q_i>) <p_ut, q_i>``;
- variational MF (``variational=True``): Gaussian posteriors N(m, diag(s^2)) over user and item vectors, trained by
  the reparameterization trick on the ELBO (Gaussian rating likelihood, N(0, prior_std^2) prior; each row's KL is
  spread over its occurrences, 1/degree per occurrence), scored with the posterior means.

Training (:meth:`MF.fit`): ``loss="mse"`` on explicit ratings (sum of 0.5 * squared errors plus 0.5 * reg * the
squared norms of the rows each example touches: per-example SGD's objective, Surprise's rule), or ``loss="bpr"`` on
implicit feedback (per-positive negatives from fastrec's numba sampler, or ``shared_neg`` negatives shared by each
batch and scored with one matrix product; BPR-MF is ``MF(biases=False).fit(train, loss="bpr")``).
Every table lives in one :class:`fastrec.nn.EmbeddingBagCollection` updated by a fused sparse optimizer in minibatch
steps; ``fit(per_sample=True)`` instead runs the classic Funk-SVD / Surprise SVD update, one rating at a time, in a
numba kernel that writes the same tables (vanilla and biased MF with ``optimizer="sgd"``).

The factorization machine on ratings is :class:`FMRatings` (same training, FM scoring over all fields).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from torch import Tensor

from fastrec.data import Interactions, NegativeSampler, TripletBatches
from fastrec.models.cf.base import (
    FeatureBags,
    IdTables,
    Recommender,
    accidental_positives,
    as_user_tensor,
    check_positive,
    entry_batches,
    fused_optimizer,
    interactions_like,
    progress,
)
from fastrec.nn import FMInteraction
from fastrec.optim import FusedSGD

__all__ = ["FMRatings", "MF"]

_DAY = 86400.0


@njit(cache=True, nogil=True)
def _sgd_epoch(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, order: np.ndarray, mean: float,
               user_bias: np.ndarray, item_bias: np.ndarray, p: np.ndarray, q: np.ndarray, lr: float, reg: float,
               biases: bool) -> None:
    """One epoch of per-sample SGD on ``0.5 * err^2 + 0.5 * reg * (b_u^2 + b_i^2 + |p_u|^2 + |q_i|^2)`` in the
    given order, updating the float32 tables in place (Surprise SVD's update: every parameter steps from the values
    before this sample's update). Arithmetic is float64; each stored value is rounded to float32 once."""
    dim = p.shape[1]
    for n in order:
        u, i = users[n], items[n]
        est = mean
        if biases:
            est += np.float64(user_bias[u]) + np.float64(item_bias[i])
        for f in range(dim):
            est += np.float64(p[u, f]) * np.float64(q[i, f])
        err = ratings[n] - est
        if biases:
            bu, bi = np.float64(user_bias[u]), np.float64(item_bias[i])
            user_bias[u] = bu + lr * (err - reg * bu)
            item_bias[i] = bi + lr * (err - reg * bi)
        for f in range(dim):
            pf, qf = np.float64(p[u, f]), np.float64(q[i, f])
            p[u, f] = pf + lr * (err * qf - reg * pf)
            q[i, f] = qf + lr * (err * pf - reg * qf)


class _SharedBPR(torch.autograd.Function):
    """``sum_{b,j} softplus(x_b . y_j - r_b) / N``: BPR of B positives (scores r) against N shared negatives
    (scores x_b . y_j), terms at the flat positions ``masked`` left out. Written by hand so that the [B, N] matrix
    is allocated twice (scores, then softplus) instead of once per autograd step, and the backward is two matrix
    products on the saved sigmoids."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, r: Tensor, masked: Tensor) -> Tensor:
        d = x @ y.T
        d.sub_(r[:, None])
        d.view(-1).index_fill_(0, masked, -torch.inf)  # softplus(-inf) = sigmoid(-inf) = 0: the term is gone
        loss = F.softplus(d).sum() / d.shape[1]
        ctx.save_for_backward(x, y, d.sigmoid_())
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        x, y, g = ctx.saved_tensors
        c = grad / g.shape[1]
        return (g @ y) * c, (g.T @ x) * c, g.sum(1) * -c, None


class _FactorModel(Recommender):
    """Shared by MF and FMRatings: side-feature bags, time features, the fit loops (MSE, BPR), score/score_all.

    Subclasses build ``self.tables`` (an :class:`IdTables`) and implement ``_lookup_ids`` (the features one batch
    needs) and ``_predict`` (scores from the looked-up vectors)."""

    def _setup(self, user_features: Any, item_features: Any, time_bins: int) -> None:
        self.user_bags = FeatureBags(user_features) if user_features is not None else None
        self.item_bags = FeatureBags(item_features) if item_features is not None else None
        if self.user_bags is not None and self.user_bags.n_rows != self.n_users:
            raise ValueError(f"user_features must have n_users={self.n_users} rows, got {self.user_bags.n_rows}")
        if self.item_bags is not None and self.item_bags.n_rows != self.n_items:
            raise ValueError(f"item_features must have n_items={self.n_items} rows, got {self.item_bags.n_rows}")
        if isinstance(time_bins, bool) or not isinstance(time_bins, int) or time_bins < 0:
            raise ValueError(f"time_bins must be an int >= 0, got {time_bins!r}")
        self.time_bins = time_bins
        self.register_buffer("global_mean", torch.zeros((), dtype=torch.float64))
        # time: [first day, last day] of training, each user's mean day
        self.register_buffer("time_range", torch.zeros(2, dtype=torch.float64))
        self.register_buffer("user_mean_day", torch.zeros(self.n_users if time_bins else 0, dtype=torch.float64))

    # ---- the features of a batch ----
    def _item_ids(self, items: Tensor, days: Tensor | None, tag: str) -> dict[str, Any]:
        ids: dict[str, Any] = {tag: items}
        if self.biases:
            ids[tag + "_b"] = items
        if self.item_bags is not None:
            bag = self.item_bags.bags(items)
            ids[tag + "attr_bag"] = bag
            if self.biases:
                ids[tag + "attrb_bag"] = bag
        if self.time_bins:
            ids[tag + "_tb"] = items * self.time_bins + self._bin(days)
        return ids

    def _user_ids(self, users: Tensor) -> dict[str, Any]:
        ids: dict[str, Any] = {"user": users}
        if self.biases:
            ids["user_b"] = users
        if self.user_bags is not None:
            bag = self.user_bags.bags(users)
            ids["uattr_bag"] = bag
            if self.biases:
                ids["uattrb_bag"] = bag
        if self.time_bins:
            ids["user_drift"] = users
        return ids

    def _bin(self, days: Tensor) -> Tensor:
        lo, hi = float(self.time_range[0]), float(self.time_range[1])
        frac = (days - lo) / max(hi - lo, 1e-9)
        return (frac.clamp(0, 1) * self.time_bins).long().clamp(max=self.time_bins - 1)

    def _days(self, timestamps: Any, n: int) -> Tensor | None:
        if not self.time_bins:
            return None
        if timestamps is None:  # no time given: score as of the last training day
            return torch.full((n,), float(self.time_range[1]), dtype=torch.float64)
        t = torch.as_tensor(np.asarray(timestamps) if not isinstance(timestamps, Tensor) else timestamps)
        return t.reshape(-1).double() / _DAY

    def _bias_terms(self, out: dict[str, Tensor], users: Tensor, days: Tensor | None, tag: str) -> Tensor:
        s = self.global_mean.float().expand(users.shape[0])
        if self.biases:
            s = s + out["user_b"][:, 0] + out[tag + "_b"][:, 0]
            if self.user_bags is not None:
                s = s + out["uattrb_bag"][:, 0]
            if self.item_bags is not None:
                s = s + out[tag + "attrb_bag"][:, 0]
        if self.time_bins:
            dev = days - self.user_mean_day[users]
            s = s + out[tag + "_tb"][:, 0] + out["user_drift"][:, 0] * self._drift(dev)
        return s

    def _drift(self, dev: Tensor) -> Tensor:
        """``sign(dev) |dev|^0.4`` (dev in days), divided by the training span^0.4 so that it lies in [-1, 1] and one
        learning rate suits every table (timeSVD needs a 1e-5 rate for alpha_u otherwise)."""
        span = max(float(self.time_range[1] - self.time_range[0]), 1.0) ** 0.4
        return (dev.sign() * dev.abs() ** 0.4 / span).float()

    def _table_specs(self, dim_user: int, dim_item: int) -> dict[str, tuple[int, int, tuple[str, ...]]]:
        """The tables every factor model shares (ids, biases, attributes, time)."""
        specs: dict[str, tuple[int, int, tuple[str, ...]]] = {
            "user": (self.n_users, dim_user, ("user",)),
            "item": (self.n_items, dim_item, ("item", "neg")),
        }
        if self.biases:
            specs["user_bias"] = (self.n_users, 1, ("user_b",))
            specs["item_bias"] = (self.n_items, 1, ("item_b", "neg_b"))
        if self.user_bags is not None:
            specs["user_attr"] = (self.user_bags.n_values, dim_user, ("uattr_bag",))
            if self.biases:
                specs["user_attr_bias"] = (self.user_bags.n_values, 1, ("uattrb_bag",))
        if self.item_bags is not None:
            specs["item_attr"] = (self.item_bags.n_values, dim_item, ("itemattr_bag", "negattr_bag"))
            if self.biases:
                specs["item_attr_bias"] = (self.item_bags.n_values, 1, ("itemattrb_bag", "negattrb_bag"))
        if self.time_bins:
            specs["item_time_bias"] = (self.n_items * self.time_bins, 1, ("item_tb", "neg_tb"))
            specs["user_drift"] = (self.n_users, 1, ("user_drift",))
        return specs

    def _zero_init(self, names: tuple[str, ...]) -> None:
        with torch.no_grad():
            for name in names:
                try:
                    self.tables.weight(name).zero_()
                except KeyError:
                    pass

    # ---- scoring ----
    def _forward(self, users: Tensor, items: Tensor, days: Tensor | None, neg: Tensor | None = None
                 ) -> tuple[Tensor, Tensor | None, Tensor]:
        """Scores of (users, items) and of (users, neg) when given, plus the regularizer of the touched rows."""
        ids = self._user_ids(users)
        ids.update(self._extra_user_ids(users))
        ids.update(self._item_ids(items, days, "item"))
        if neg is not None:
            ids.update(self._item_ids(neg, days, "neg"))
        out = self.tables(ids)
        pos, reg = self._predict(out, users, days, "item")
        if neg is None:
            return pos, None, reg
        neg_s, reg_n = self._predict(out, users, days, "neg", user_reg=False)
        return pos, neg_s, reg + reg_n

    def _extra_user_ids(self, users: Tensor) -> dict[str, Any]:
        return {}

    def _predict(self, out: dict[str, Tensor], users: Tensor, days: Tensor | None, tag: str,
                 user_reg: bool = True) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    @staticmethod
    def _sq(out: dict[str, Tensor], keys: list[str]) -> Tensor:
        return sum((out[k].square().sum() for k in keys if k in out), torch.zeros(()))

    @torch.no_grad()
    def score(self, users: Any, items: Any, timestamps: Any = None) -> Tensor:
        """Predicted ratings / scores of (user, item) pairs (``timestamps``, unix seconds, for temporal models; the
        last training day when omitted)."""
        u, i, shape = self._pairs(users, items)
        was = self.training
        self.eval()
        try:
            days = self._days(timestamps, u.numel())
            if days is not None and days.numel() != u.numel():
                raise ValueError(f"timestamps must have one entry per pair ({u.numel()}), got {days.numel()}")
            s = self._forward(u, i, days)[0] if u.numel() else torch.zeros(0)
        finally:
            self.train(was)
        return s.reshape(shape)

    # ---- training ----
    def fit(
        self,
        train: Interactions,
        *,
        loss: str = "mse",
        epochs: int = 20,
        batch_size: int = 256,
        reg: float = 0.02,
        n_neg: int = 1,
        shared_neg: int = 0,
        margin: float = 0.0,
        lr_decay: float = 1.0,
        seed: int = 0,
        per_sample: bool = False,
        show_progress: bool = True,
        callback: Any = None,
    ) -> _FactorModel:
        """Trains on ``train`` (its values are the ratings for ``loss="mse"``; for ``"bpr"`` every entry is a
        positive and ``n_neg`` uniform negatives per positive come from :class:`fastrec.data.NegativeSampler`).

        ``shared_neg = N > 0`` (``loss="bpr"``, MF with ``tastes=1``, neither ``variational`` nor ``time_bins`` nor
        ``item_features``; ``n_neg`` stays 1): instead of per-positive negatives, each batch draws N uniform
        negatives that every positive of the batch shares. The B x N negative scores are one matrix product and the
        N rows one lookup, so hundreds of negatives per positive cost about what a few per-pair ones do. Each
        positive's loss is the mean of its BPR terms over the N negatives (a negative that is one of the user's
        train items, the positive included, contributes 0); the regularizer is the per-pair one averaged the same
        way (the negative rows weigh ``B / N`` each), so ``reg`` means what it means with per-pair negatives.

        ``margin`` (``loss="bpr"``): each BPR term is ``softplus(s_neg - s_pos + margin)``; 0 is BPR as published. A
        negative margin lets a positive count as ranked once it is within ``-margin`` of a negative, which shrinks
        the many easy negatives' gradients more than the hard ones' (Gowalla with 1,024 shared negatives: -1 leads
        0 on validation up to epoch 160, 0 leads from 170 to 200).

        ``reg``: L2 weight on the rows each example touches (per example, as per-example SGD applies it);
        ``lr_decay``: the learning rate is multiplied by it after each epoch (each fit starts from the constructor's
        ``lr``); ``callback(model, epoch)`` runs after each epoch (e.g. validation).

        ``per_sample=True`` (``loss="mse"``, ``optimizer="sgd"``; vanilla or biased MF, or FMRatings without
        attributes and time, which is biased MF): exact per-sample SGD, the classic Funk-SVD / Surprise SVD update
        (``err = r - r_hat``; ``b += lr (err - reg b)``; ``p_u += lr (err q_i - reg p_u)``,
        ``q_i += lr (err p_u - reg q_i)`` from the pre-update values), one rating at a time in a fresh shuffled
        order each epoch, in a single-threaded numba kernel: deterministic from ``seed``; ``batch_size`` is unused.
        Minibatch steps (the default) take the same objective's gradient summed over ``batch_size`` ratings (rows
        repeated in a batch get one aggregated step)."""
        train = interactions_like(train, self)
        if loss not in ("mse", "bpr"):
            raise ValueError(f"loss must be 'mse' or 'bpr', got {loss!r}")
        check_positive("epochs", epochs, integer=True)
        check_positive("batch_size", batch_size, integer=True)
        if not reg >= 0:
            raise ValueError(f"reg must be >= 0, got {reg!r}")
        check_positive("lr_decay", lr_decay)
        if not math.isfinite(margin) or (margin and loss != "bpr"):
            raise ValueError(f"margin must be a finite number, and 0 unless loss='bpr'; got {margin!r} with "
                             f"loss={loss!r}")
        if train.nnz == 0:
            raise ValueError("train has no interactions")
        if per_sample:
            self._check_per_sample(loss)
        if isinstance(shared_neg, bool) or not isinstance(shared_neg, (int, np.integer)) or shared_neg < 0:
            raise ValueError(f"shared_neg must be an int >= 0, got {shared_neg!r}")
        if shared_neg:
            self._check_shared_neg(loss, n_neg)
        self.set_seen(train)
        self._fit_statistics(train)
        torch.manual_seed(seed)
        self.train()
        optimizer = self.tables.ebc.optimizer
        optimizer.lr = self.lr  # every fit restarts from the constructor's rate; lr_decay decays it within the fit
        users_all = torch.from_numpy(train.rowids().astype(np.int64))
        items_all = torch.from_numpy(train.indices.astype(np.int64))
        ratings = torch.from_numpy(train.values)
        days_all = (torch.from_numpy(train.timestamps).double() / _DAY if self.time_bins else None)
        if self.time_bins and train.timestamps is None:
            raise ValueError("time_bins > 0 needs train.timestamps")
        rng = np.random.default_rng(seed)
        triplets = (TripletBatches(train, batch_size=batch_size, n_neg=n_neg, seed=seed,
                                   sampler=NegativeSampler(train, seed=seed))
                    if loss == "bpr" and not shared_neg else None)
        for epoch in range(epochs):
            if per_sample:
                self._sgd_epoch(users_all.numpy(), items_all.numpy(), ratings.numpy(), rng.permutation(train.nnz),
                                float(optimizer.lr), float(reg))
            elif loss == "mse" or shared_neg:
                batches = ((users_all[b], items_all[b], ratings[b], None, None if days_all is None else days_all[b])
                           for b in map(torch.from_numpy, entry_batches(train.nnz, batch_size, rng)))
                batches = progress(batches, f"epoch {epoch + 1}/{epochs}", show_progress, -(-train.nnz // batch_size))
                if shared_neg:
                    self._shared_bpr_epoch(batches, train, shared_neg, reg, margin, rng)
                else:
                    self._minibatch_epoch(batches, loss, reg, margin)
            else:
                assert triplets is not None
                batches = ((u.repeat_interleave(n_neg), p.repeat_interleave(n_neg), None, n.reshape(-1), None)
                           for u, p, n in triplets)
                self._minibatch_epoch(progress(batches, f"epoch {epoch + 1}/{epochs}", show_progress,
                                               len(triplets)), loss, reg, margin)
            optimizer.lr *= lr_decay
            if callback is not None:
                callback(self, epoch)
        self.eval()
        return self

    def _minibatch_epoch(self, batches: Any, loss: str, reg: float, margin: float) -> None:
        """One epoch of minibatch steps: each batch's summed objective, the fused optimizer steps in the backward."""
        for u, i, r, neg, days in batches:
            if loss == "bpr" and self.time_bins:
                days = self._days(None, u.numel())
            pos, neg_s, regularizer = self._forward(u, i, days, neg)
            if loss == "mse":
                objective = 0.5 * (pos - r).square().sum()
            else:
                objective = -F.logsigmoid(pos - neg_s - margin).sum()
            objective = objective + 0.5 * reg * regularizer + self._extra_loss(u.numel())
            objective.backward()

    def _check_shared_neg(self, loss: str, n_neg: int) -> None:
        """Shared negatives need BPR, one negative setting, and a score bilinear in the user and item vectors."""
        if loss != "bpr":
            raise ValueError(f"shared_neg > 0 needs loss='bpr', got loss={loss!r}")
        if n_neg != 1:
            raise ValueError(f"shared_neg > 0 replaces the per-positive negatives: leave n_neg at 1, got {n_neg!r}")
        unsupported = self._shared_neg_unsupported()
        if unsupported:
            raise ValueError(f"shared_neg > 0 {unsupported}")

    def _shared_neg_unsupported(self) -> str | None:
        """Why this model cannot train with shared negatives (None: it can)."""
        return f"is supported by MF only, not {type(self).__name__}"

    def _shared_bpr_epoch(self, batches: Any, train: Interactions, n_shared: int, reg: float, margin: float,
                          rng: np.random.Generator) -> None:
        """One BPR epoch with ``n_shared`` uniform negatives per batch shared by all its positives (see fit)."""
        for u, i, _, _, _ in batches:
            neg = torch.from_numpy(rng.integers(0, self.n_items, n_shared))
            ids = self._user_ids(u)
            ids.update(self._item_ids(i, None, "item"))
            shared = {"neg": neg, "neg_b": neg} if self.biases else {"neg": neg}
            out = self.tables(ids, shared=shared)
            pos, regularizer = self._predict(out, u, None, "item")
            hits = accidental_positives(train.indptr, train.indices, u.numpy(), neg.numpy(), self.n_items)
            x, y, r = self._shared_operands(out, pos)
            objective = _SharedBPR.apply(x, y, r - margin, torch.from_numpy(hits))
            regularizer = regularizer + self._sq(out, ["neg", "neg_b"]) * (u.numel() / n_shared)
            (objective + 0.5 * reg * regularizer).backward()

    def _shared_operands(self, out: dict[str, Tensor], pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def _check_per_sample(self, loss: str) -> None:
        """per_sample=True needs the plain model ``mu + b_u + b_i + <p_u, q_i>`` (or without biases), MSE and SGD."""
        if loss != "mse":
            raise ValueError(f"per_sample=True needs loss='mse', got loss={loss!r}")
        if self.user_bags is not None or self.item_bags is not None or self.time_bins:
            raise ValueError("per_sample=True supports neither side features nor time_bins")
        if not isinstance(self.tables.ebc.optimizer, FusedSGD):
            raise ValueError(f"per_sample=True needs optimizer='sgd', got {type(self.tables.ebc.optimizer).__name__}")

    def _sgd_epoch(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, order: np.ndarray, lr: float,
                   reg: float) -> None:
        """One epoch of per-sample SGD (see :meth:`fit`) in ``order``, in place on the tables' float32 storage."""
        weight = self.tables.weight
        p, q = weight("user").detach().numpy(), weight("item").detach().numpy()
        no_bias = np.zeros(0, dtype=np.float32)
        bu = weight("user_bias").detach().numpy()[:, 0] if self.biases else no_bias
        bi = weight("item_bias").detach().numpy()[:, 0] if self.biases else no_bias
        _sgd_epoch(users, items, ratings.astype(np.float64), order, float(self.global_mean), bu, bi, p, q, lr, reg,
                   self.biases)

    def _extra_loss(self, n: int) -> Tensor:
        return torch.zeros(())

    def _fit_statistics(self, train: Interactions) -> None:
        """Global mean rating, time range and users' mean days. Without biases there is no global mean either:
        vanilla MF predicts ``<p_u, q_i>`` (Funk's SVD, Surprise's ``SVD(biased=False)``), as documented."""
        self.global_mean.fill_(float(train.values.astype(np.float64).mean()) if self.biases else 0.0)
        if self.time_bins and train.timestamps is not None:
            days = train.timestamps.astype(np.float64) / _DAY
            self.time_range.copy_(torch.tensor([days.min(), days.max()]))
            sums = np.bincount(train.rowids(), weights=days, minlength=self.n_users)
            deg = np.maximum(train.user_degrees(), 1)
            self.user_mean_day.copy_(torch.from_numpy(sums / deg))


class MF(_FactorModel):
    """Matrix factorization with the optional parts listed in the module docstring.

    Args:
        n_users, n_items: id counts.
        dim: factors per vector.
        biases: the global mean and user/item (and attribute) biases.
        user_features, item_features: sparse ``[n_users|n_items, n_values]`` attribute matrices (values weigh the
            attributes; e.g. one-hot fields and multi-hot genres scaled to sum 1).
        time_bins: > 0 adds the temporal terms (needs timestamps).
        tastes: taste vectors per user (> 1: mixture of tastes).
        variational: Gaussian posteriors over the vectors (variational MF).
        prior_std, noise_std: the variational prior N(0, prior_std^2) and the rating noise std (variational only).
        init_std: vectors start N(0, init_std^2) (Surprise: 0.1); biases start at 0.
        optimizer, lr: the fused sparse optimizer of the tables (``sgd``, ``adagrad``, ``rowwise_adagrad``,
            ``adam``) and its learning rate.
        seed: initialization seed.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 64,
        *,
        biases: bool = True,
        user_features: Any = None,
        item_features: Any = None,
        time_bins: int = 0,
        tastes: int = 1,
        variational: bool = False,
        prior_std: float = 1.0,
        noise_std: float = 1.0,
        init_std: float = 0.1,
        optimizer: str = "sgd",
        lr: float = 0.005,
        seed: int = 0,
    ) -> None:
        super().__init__(n_users, n_items)
        check_positive("dim", dim, integer=True)
        check_positive("tastes", tastes, integer=True)
        check_positive("prior_std", prior_std)
        check_positive("noise_std", noise_std)
        self.dim, self.biases, self.tastes, self.variational = dim, bool(biases), tastes, bool(variational)
        self.prior_std, self.noise_std = float(prior_std), float(noise_std)
        self._setup(user_features, item_features, time_bins)
        specs = self._table_specs(dim * tastes, dim)
        if tastes > 1:
            specs["user_attention"] = (self.n_users, dim * tastes, ("user_att",))
        if variational:
            specs["user_logvar"] = (self.n_users, dim * tastes, ("user_lv",))
            specs["item_logvar"] = (self.n_items, dim, ("item_lv", "neg_lv"))
        self.lr = float(lr)
        self.tables = IdTables(specs, fused_optimizer(optimizer, lr), init_std=init_std, seed=seed)
        self._zero_init(("user_bias", "item_bias", "user_attr_bias", "item_attr_bias", "item_time_bias",
                         "user_drift"))
        if variational:  # posteriors start narrow: log variance of (init_std / 10)^2
            with torch.no_grad():
                for name in ("user_logvar", "item_logvar"):
                    self.tables.weight(name).fill_(2 * float(np.log(init_std / 10)))
        self.register_buffer("user_degree", torch.ones(self.n_users if variational else 0))
        self.register_buffer("item_degree", torch.ones(self.n_items if variational else 0))

    def _check_per_sample(self, loss: str) -> None:
        if self.tastes > 1 or self.variational:
            raise ValueError("per_sample=True supports neither tastes > 1 nor variational=True")
        super()._check_per_sample(loss)

    def _shared_neg_unsupported(self) -> str | None:
        if self.tastes > 1 or self.variational or self.time_bins or self.item_bags is not None:
            return "supports neither tastes > 1, variational=True, time_bins nor item_features"
        return None

    def _shared_operands(self, out: dict[str, Tensor], pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(x [B, K], y [N, K], r [B])`` with ``x_b . y_j - r_b`` = score(user b, negative j) - score(positive b)."""
        p = out["user"] + out["uattr_bag"] if self.user_bags is not None else out["user"]
        if not self.biases:
            return p, out["neg"], pos
        # mu and the user biases are in both scores and cancel; the negative's bias rides as one more factor
        user_part = self.global_mean.float() + out["user_b"][:, 0]
        if self.user_bags is not None:
            user_part = user_part + out["uattrb_bag"][:, 0]
        ones = torch.ones(p.shape[0], 1)
        return torch.cat([p, ones], 1), torch.cat([out["neg"], out["neg_b"]], 1), pos - user_part

    def _extra_user_ids(self, users: Tensor) -> dict[str, Any]:
        ids: dict[str, Any] = {}
        if self.tastes > 1:
            ids["user_att"] = users
        if self.variational:
            ids["user_lv"] = users
        return ids

    def _item_ids(self, items: Tensor, days: Tensor | None, tag: str) -> dict[str, Any]:
        ids = super()._item_ids(items, days, tag)
        if self.variational:
            ids[tag + "_lv"] = items
        return ids

    def _sample(self, mean: Tensor, logvar_key: str, out: dict[str, Tensor], degree: Tensor) -> tuple[Tensor, Tensor]:
        """A reparameterized draw (training) or the mean, and the occurrence-weighted KL to the prior."""
        logvar = out[logvar_key]
        var_p = self.prior_std ** 2
        kl = 0.5 * ((logvar.exp() + mean.square()) / var_p - 1.0 - logvar + np.log(var_p)).sum(1)
        kl = (kl / degree).sum()
        if not self.training:
            return mean, kl
        return mean + torch.randn_like(mean) * (0.5 * logvar).exp(), kl

    def _predict(self, out: dict[str, Tensor], users: Tensor, days: Tensor | None, tag: str,
                 user_reg: bool = True) -> tuple[Tensor, Tensor]:
        p, q = out["user"], out[tag]
        if self.user_bags is not None:
            p = p + out["uattr_bag"]
        if self.item_bags is not None:
            q = q + out[tag + "attr_bag"]
        kl = torch.zeros(())
        if self.variational:
            p, kl_u = self._sample(p, "user_lv", out, self.user_degree[users])
            q, kl_i = self._sample(q, tag + "_lv", out, self._batch_degrees[tag])
            kl = (kl_u if user_reg else 0.0) + kl_i
        s = self._bias_terms(out, users, days, tag) + self._interaction(p, q, out.get("user_att"))
        keys = [tag, tag + "_b", tag + "attr_bag", tag + "attrb_bag", tag + "_tb"]
        if user_reg:
            keys += ["user", "user_b", "uattr_bag", "uattrb_bag", "user_drift", "user_att"]
        if self.variational:  # the prior replaces the L2 penalty on the vectors
            keys = [k for k in keys if k not in ("user", tag, "uattr_bag", tag + "attr_bag")]
            self._kl = getattr(self, "_kl", torch.zeros(())) + kl
        return s, self._sq(out, keys)

    def _forward(self, users: Tensor, items: Tensor, days: Tensor | None, neg: Tensor | None = None
                 ) -> tuple[Tensor, Tensor | None, Tensor]:
        if self.variational:
            self._kl = torch.zeros(())
            self._batch_degrees = {"item": self.item_degree[items],
                                   "neg": None if neg is None else self.item_degree[neg]}
        return super()._forward(users, items, days, neg)

    def _interaction(self, p: Tensor, q: Tensor, attention: Tensor | None) -> Tensor:
        if self.tastes == 1:
            return (p * q).sum(-1)
        n = q.shape[0]
        tastes = p.view(n, self.tastes, self.dim)
        att = attention.view(n, self.tastes, self.dim)
        weights = torch.softmax((att * q.unsqueeze(1)).sum(-1), dim=1)
        return (weights * (tastes * q.unsqueeze(1)).sum(-1)).sum(1)

    def _extra_loss(self, n: int) -> Tensor:
        if not self.variational:
            return torch.zeros(())
        # the likelihood in the fit loop is 0.5 * err^2, i.e. unit noise: rescale the KL instead of the errors
        return self._kl * self.noise_std ** 2

    def _fit_statistics(self, train: Interactions) -> None:
        super()._fit_statistics(train)
        if self.variational:
            self.user_degree.copy_(torch.from_numpy(np.maximum(train.user_degrees(), 1).astype(np.float32)))
            self.item_degree.copy_(torch.from_numpy(np.maximum(train.item_popularity(), 1).astype(np.float32)))

    # ---- fast full scoring ----
    def item_vectors(self) -> Tensor:
        """``[n_items, dim]`` item vectors (posterior means, attributes added)."""
        q = self.tables.weight("item").detach().clone()
        if self.item_bags is not None:
            q += self._attr_sum(self.item_bags, self.tables.weight("item_attr"))
        return q

    def user_vectors(self) -> Tensor:
        """``[n_users, tastes * dim]`` user vectors (attributes added)."""
        p = self.tables.weight("user").detach().clone()
        if self.user_bags is not None:
            p += self._attr_sum(self.user_bags, self.tables.weight("user_attr"))
        return p

    @staticmethod
    def _attr_sum(bags: FeatureBags, table: Tensor) -> Tensor:
        m = torch.sparse_csr_tensor(bags.indptr, bags.indices, bags.weights, (bags.n_rows, bags.n_values))
        return (m @ table.detach()).to_dense() if m._nnz() else torch.zeros(bags.n_rows, table.shape[1])

    def _item_biases(self) -> Tensor:
        b = torch.zeros(self.n_items)
        if self.biases:
            b += self.tables.weight("item_bias")[:, 0].detach()
            if self.item_bags is not None:
                b += self._attr_sum(self.item_bags, self.tables.weight("item_attr_bias"))[:, 0]
        if self.time_bins:  # as of the last training day
            last = self._bin(self.time_range[1:2]).item()
            b += self.tables.weight("item_time_bias").detach().view(self.n_items, self.time_bins)[:, last]
        return b

    @torch.no_grad()
    def score_all(self, users: Any) -> Tensor:
        """``[B, n_items]`` scores (as of the last training day for temporal models)."""
        u = as_user_tensor(users, self.n_users)
        q = self.item_vectors()
        p = self.user_vectors()[u]
        if self.tastes == 1:
            s = p @ q.T
        else:
            tastes = p.view(-1, self.tastes, self.dim)
            att = self.tables.weight("user_attention").detach()[u].view(-1, self.tastes, self.dim)
            s = (torch.softmax(att @ q.T, dim=1) * (tastes @ q.T)).sum(1)
        s += self._item_biases() + float(self.global_mean)
        if self.biases:
            ub = self.tables.weight("user_bias")[:, 0].detach()[u]
            if self.user_bags is not None:
                ub = ub + self._attr_sum(self.user_bags, self.tables.weight("user_attr_bias"))[u, 0]
            s += ub[:, None]
        if self.time_bins:
            dev = self.time_range[1] - self.user_mean_day[u]
            drift = self.tables.weight("user_drift")[:, 0].detach()[u] * self._drift(dev)
            s += drift[:, None]
        return s


class FMRatings(_FactorModel):
    """A factorization machine over the fields user, item, user attributes, item attributes (and the item's time bin
    with ``time_bins > 0``): ``mu + sum_f w_f + sum_{f<g} <v_f, v_g>`` with the pairwise term computed by
    :class:`fastrec.nn.FMInteraction`. Attribute fields are weighted bags (their vectors and weights pooled).
    Arguments as :class:`MF`; trained with the same :meth:`fit`."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 64,
        *,
        user_features: Any = None,
        item_features: Any = None,
        time_bins: int = 0,
        init_std: float = 0.1,
        optimizer: str = "sgd",
        lr: float = 0.005,
        seed: int = 0,
    ) -> None:
        super().__init__(n_users, n_items)
        check_positive("dim", dim, integer=True)
        self.dim, self.biases = dim, True
        self._setup(user_features, item_features, time_bins)
        specs = self._table_specs(dim, dim)
        if time_bins:  # the time bin as a field with its own vector
            specs["time_bin"] = (time_bins, dim, ("item_tv", "neg_tv"))
        self.lr = float(lr)
        self.tables = IdTables(specs, fused_optimizer(optimizer, lr), init_std=init_std, seed=seed)
        self._zero_init(("user_bias", "item_bias", "user_attr_bias", "item_attr_bias", "item_time_bias",
                         "user_drift"))
        self.fm = FMInteraction()

    def _item_ids(self, items: Tensor, days: Tensor | None, tag: str) -> dict[str, Any]:
        ids = super()._item_ids(items, days, tag)
        if self.time_bins:
            ids[tag + "_tv"] = self._bin(days)
        return ids

    def _predict(self, out: dict[str, Tensor], users: Tensor, days: Tensor | None, tag: str,
                 user_reg: bool = True) -> tuple[Tensor, Tensor]:
        fields = [out["user"], out[tag]]
        for key in ("uattr_bag", tag + "attr_bag", tag + "_tv"):
            if key in out:
                fields.append(out[key])
        s = self._bias_terms(out, users, days, tag) + self.fm(torch.stack(fields, 1))
        keys = [tag, tag + "_b", tag + "attr_bag", tag + "attrb_bag", tag + "_tb", tag + "_tv"]
        if user_reg:
            keys += ["user", "user_b", "uattr_bag", "uattrb_bag", "user_drift"]
        return s, self._sq(out, keys)
