"""Caser (Tang & Wang, WSDM 2018): convolutions over the embeddings of the last L items, plus a user embedding.

The last ``max_len`` (= L) items form an L x dim "image". Horizontal filters of heights 1..L (``n_h`` of each) slide
over it and are max-pooled over time (union-level patterns); ``n_v`` vertical L x 1 filters take weighted sums of
the L rows (point-level patterns). Both go through dropout and a fully connected layer to ``z`` (dim); the history
vector is ``[z, P_u]`` with the user embedding ``P_u`` (when built with ``n_users``), and item i scores
``[z, P_u] . W[i] + b[i]``.

Training, as in the paper: every window of the user's training sequence (L items before, the next ``targets`` = T
items after) is one example; binary cross-entropy of the T targets against ``n_neg`` negatives drawn uniformly from
the items the user never interacted with (:class:`fastrec.data.NegativeSampler`). A history shorter than L is
left-padded with zero rows, at inference too, so a score never depends on the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastrec.data import NegativeSampler
from fastrec.models.seq._sequences import check_int
from fastrec.models.seq.base import SequentialRecommender
from fastrec.models.seq.train import TrainSequences

__all__ = ["Caser"]


class Caser(SequentialRecommender):
    """Convolutional sequence embedding recommendation.

    Args:
        n_items: number of items (internal ids ``0 .. n_items - 1``).
        max_len: L, the number of most recent items read (5 in the paper).
        dim: item and user embedding width d (50 in the paper).
        n_users: number of users with an embedding (their internal ids ``0 .. n_users - 1``, the row ids of the
            training sequences); 0 builds Caser without the user term (the paper's ablation), for sessions.
        n_h: horizontal filters per height 1..L (16 in the paper).
        n_v: vertical filters (4 in the paper).
        dropout: dropout on the convolution features (0.5 in the paper).
        targets: T, the next items each training window predicts (3 in the paper).
        n_neg: negatives per training window (3 in the paper).
        seed: seeds the initial weights.
    """

    def __init__(self, n_items: int, max_len: int = 5, dim: int = 50, n_users: int = 0, n_h: int = 16,
                 n_v: int = 4, dropout: float = 0.5, targets: int = 3, n_neg: int = 3, seed: int = 0) -> None:
        super().__init__(dict(n_items=n_items, max_len=max_len, dim=dim, n_users=n_users, n_h=n_h, n_v=n_v,
                              dropout=dropout, targets=targets, n_neg=n_neg, seed=seed))
        for name, v, low in (("dim", dim, 1), ("n_users", n_users, 0), ("n_h", n_h, 1), ("n_v", n_v, 1),
                             ("targets", targets, 1), ("n_neg", n_neg, 1)):
            check_int(name, v, low)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.n_users, self.targets, self.n_neg = int(n_users), int(targets), int(n_neg)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)  # row 0: padding, row i+1: item i
            self.user_emb = nn.Embedding(n_users, dim) if n_users else None
            self.conv_v = nn.Conv2d(1, n_v, (max_len, 1))
            self.conv_h = nn.ModuleList(nn.Conv2d(1, n_h, (h, dim)) for h in range(1, max_len + 1))
            self.fc = nn.Linear(n_v * dim + n_h * max_len, dim)
            self.drop = nn.Dropout(dropout)
            out_dim = dim * (2 if n_users else 1)
            self.out_emb = nn.Embedding(n_items, out_dim)
            self.out_bias = nn.Parameter(torch.zeros(n_items))
            # the paper's code: N(0, 1/d) embeddings, torch's defaults for the convolutions and the fc layer
            nn.init.normal_(self.item_emb.weight, std=1.0 / dim)
            if self.user_emb is not None:
                nn.init.normal_(self.user_emb.weight, std=1.0 / dim)
            nn.init.normal_(self.out_emb.weight, std=1.0 / out_dim)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()

    def encode(self, seqs: Tensor, users: Tensor | None = None) -> Tensor:
        """[B, <= L] left-padded ids (-1 padding) and, with user embeddings, user ids [B] -> [B, dim or 2 dim]."""
        if seqs.shape[1] < self.max_len:  # batches come trimmed to their longest history: restore the L rows
            seqs = F.pad(seqs, (self.max_len - seqs.shape[1], 0), value=-1)
        e = self.item_emb(seqs[:, -self.max_len:] + 1).unsqueeze(1)  # [B, 1, L, d]
        v = self.conv_v(e).flatten(1)  # [B, n_v * d]
        h = [F.relu(conv(e).squeeze(3)).amax(dim=2) for conv in self.conv_h]  # each [B, n_h]
        z = F.relu(self.fc(self.drop(torch.cat([v, *h], dim=1))))
        if self.user_emb is None:
            return z
        if users is None:
            raise ValueError("Caser with n_users > 0 needs the user id of each history")
        return torch.cat([z, self.user_emb(users)], dim=1)

    def output_vectors(self) -> tuple[Tensor, Tensor]:
        return self.out_emb.weight, self.out_bias

    # ------------------------------------------------------------------ training
    def _prepare(self, train: object) -> TrainSequences:
        """``train``: time-ordered :class:`fastrec.data.Interactions` (row r is user r) or any histories form
        (sequence r belongs to user r); every sequence of 2+ items trains on all its windows."""
        data = TrainSequences.build(train, self.n_items, 2, positives=True)
        if self.n_users and data.offsets.size - 1 > self.n_users:
            raise ValueError(f"train holds {data.offsets.size - 1} user sequences but the model was built for "
                             f"n_users={self.n_users}")
        return data

    def _windows(self, data: TrainSequences) -> tuple[np.ndarray, np.ndarray]:
        """(row, position of the first target) of every training window: each item after a row's first one starts
        one window, except the last ``targets - 1`` of a row that holds more than ``targets`` items (their
        windows would predict fewer than T items; those items are still targets of earlier windows)."""
        lengths = np.diff(data.offsets)[data.rows]
        counts = np.maximum(lengths - self.targets, 1)
        rows = np.repeat(data.rows, counts)
        first = np.repeat(data.offsets[data.rows] + 1 - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        return rows, first

    def _batches(self, data: TrainSequences, batch_size: int, epoch: int, seed: int
                 ) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor, float]]:
        """(inputs, users, targets, negatives, targets per window on average over the training windows): the loss
        divides by the last times the batch's windows."""
        rng = np.random.default_rng([seed, epoch, 3])
        sampler = NegativeSampler(data.positives, seed=seed * 1_000_003 + epoch)
        rows, first = self._windows(data)
        order = rng.permutation(rows.size)
        starts, ends = data.offsets[rows], data.offsets[rows + 1]
        per_row = float(np.minimum(ends - first, self.targets).mean())
        before = np.arange(-self.max_len, 0)
        after = np.arange(self.targets)
        for s in range(0, order.size, batch_size):
            w = order[s:s + batch_size]
            inp = first[w, None] + before
            tgt = first[w, None] + after
            seq = np.where(inp >= starts[w, None], data.items[np.maximum(inp, 0)], -1)
            target = np.where(tgt < ends[w, None], data.items[np.minimum(tgt, data.items.size - 1)], -1)
            neg = sampler.sample(rows[w], self.n_neg, offset=s * self.n_neg).astype(np.int64)
            yield (torch.from_numpy(seq), torch.from_numpy(rows[w]), torch.from_numpy(target),
                   torch.from_numpy(neg), per_row)

    def _loss(self, batch: tuple[Tensor, Tensor, Tensor, Tensor, float]) -> tuple[Tensor, int]:
        """Binary cross-entropy of the targets summed over the batch, divided by a constant per window (the mean
        number of targets per training window) rather than by the batch's own number of targets, so every target
        weighs the same in any batch (windows at the end of short sequences hold fewer than T targets); the
        negatives, ``n_neg`` per window, are averaged."""
        *tensors, per_row = batch
        seq, users, tgt, neg = (t.to(self.device) for t in tensors)
        h = self.encode(seq, users if self.n_users else None)
        w, b = self.output_vectors()
        valid = tgt >= 0
        t = tgt.clamp(min=0)
        pos_logit = torch.einsum("bd,btd->bt", h, w[t]) + b[t]
        neg_logit = torch.einsum("bd,btd->bt", h, w[neg]) + b[neg]
        loss = -F.logsigmoid(pos_logit)[valid].sum() / (per_row * seq.shape[0]) - F.logsigmoid(-neg_logit).mean()
        return loss, seq.shape[0]
