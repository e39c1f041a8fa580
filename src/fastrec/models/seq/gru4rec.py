"""GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018): a GRU over the session's items.

Training uses session-parallel mini-batches: ``batch_size`` sessions run side by side, one event per step; when a
session ends, the next session takes its slot and the slot's hidden state is reset. Each step scores the batch's
next items (the other sessions' targets serve as negatives) plus ``n_sample`` extra negatives drawn from
popularity ** ``sample_alpha`` (:class:`fastrec.data.NegativeSampler`), with cross-entropy (``"softmax"``),
BPR-max or TOP1-max (CIKM 2018), summed over the step's events and divided by ``batch_size``: at the end of an
epoch, when no session is left to start, steps hold fewer events, and a mean per step would give each of them up to
``batch_size`` times the weight of an event of a full step. Like the original, gradients flow through one step (the
carried state is detached). With ``tied=True`` the input item vectors are the output ones (the "constrained
embedding" of the later GRU4Rec code). Inference runs the GRU over the history (packed, so padding never enters the
recurrence).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from fastrec.data import Interactions, NegativeSampler
from fastrec.models.seq.base import SequentialRecommender
from fastrec.models.seq.train import TrainSequences

__all__ = ["GRU4Rec"]

LOSSES = ("softmax", "bpr-max", "top1-max")


class Step(NamedTuple):
    """One session-parallel step: current items, next items, which previous slot each row continues (-1: a new
    session, state reset), extra negatives, how many sessions start here, and the number of slots (``batch_size``,
    which divides the summed loss)."""

    inputs: Tensor
    targets: Tensor
    carry: Tensor
    negatives: Tensor
    started: int
    slots: int


def session_parallel(offsets: np.ndarray, rows: np.ndarray, batch_size: int, rng: np.random.Generator
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(event positions [B], carry [B], started) per step over the sessions ``rows`` (each 2+ events) in random
    order. Row b of a step continues row ``carry[b]`` of the previous step, or starts a session (-1). When no
    session is left to start, finished slots are dropped, so every event of every session is trained on."""
    order = rows[rng.permutation(rows.size)]
    starts, ends = offsets[order], offsets[order + 1]
    n_slots = min(batch_size, order.size)
    slot = np.arange(n_slots)              # session (index into order) of each active slot
    pos = starts[:n_slots].copy()          # current event of each slot
    carry = np.full(n_slots, -1, np.int64)
    nxt = n_slots
    started = n_slots
    while slot.size:
        yield pos, carry, started
        pos = pos + 1
        done = pos + 1 >= ends[slot]
        carry = np.arange(slot.size, dtype=np.int64)
        started = 0
        if done.any():
            idx = np.flatnonzero(done)
            refill = idx[:max(0, min(idx.size, order.size - nxt))]
            new = np.arange(nxt, nxt + refill.size)
            nxt += refill.size
            slot, pos = slot.copy(), pos.copy()
            slot[refill], pos[refill], carry[refill] = new, starts[new], -1
            started = refill.size
            keep = np.ones(slot.size, bool)
            keep[idx[refill.size:]] = False
            slot, pos, carry = slot[keep], pos[keep], carry[keep]


class GRU4Rec(SequentialRecommender):
    """Session-based recommendation with a GRU.

    Args:
        n_items: number of items (internal ids ``0 .. n_items - 1``).
        max_len: longest history read at inference.
        dim: input item embedding width (must equal ``hidden`` with ``tied``).
        hidden: GRU state width.
        dropout: dropout on the input embeddings and on the GRU output.
        loss: ``"softmax"`` (cross-entropy over the sampled candidates), ``"bpr-max"`` or ``"top1-max"``.
        n_sample: extra negatives per step, shared by the batch (0: in-batch negatives only).
        sample_alpha: popularity exponent of the extra negatives.
        bpreg: BPR-max's score regularization weight.
        tied: the input item embedding is the output one (no separate input table).
        seed: seeds the initial weights.
    """

    def __init__(self, n_items: int, max_len: int = 50, dim: int = 64, hidden: int = 100, dropout: float = 0.0,
                 loss: str = "bpr-max", n_sample: int = 2048, sample_alpha: float = 0.75, bpreg: float = 1.0,
                 tied: bool = False, seed: int = 0) -> None:
        super().__init__(dict(n_items=n_items, max_len=max_len, dim=dim, hidden=hidden, dropout=dropout, loss=loss,
                              n_sample=n_sample, sample_alpha=sample_alpha, bpreg=bpreg, tied=tied, seed=seed))
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if n_sample < 0:
            raise ValueError(f"n_sample must be >= 0, got {n_sample}")
        if tied and dim != hidden:
            raise ValueError(f"tied=True shares the item vectors between input and output: dim must equal hidden, "
                             f"got dim={dim!r}, hidden={hidden!r}")
        self.loss_kind, self.n_sample = loss, int(n_sample)
        self.sample_alpha, self.bpreg = float(sample_alpha), float(bpreg)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            # sparse gradients: a step touches a batch's items and samples, not the catalog (lazy Adam in fit)
            self.item_emb = None if tied else nn.Embedding(n_items, dim, sparse=True)
            self.gru = nn.GRU(dim, hidden, batch_first=True)
            self.out_emb = nn.Embedding(n_items, hidden, sparse=True)
            self.out_bias = nn.Parameter(torch.zeros(n_items))
            self.drop = nn.Dropout(dropout)
            for emb in (self.item_emb, self.out_emb):
                if emb is not None:
                    nn.init.normal_(emb.weight, std=0.05)
        self._state: Tensor | None = None

    def _inputs(self, items: Tensor) -> Tensor:
        """Dropped-out input vectors of the items."""
        return self.drop((self.out_emb if self.item_emb is None else self.item_emb)(items))

    def encode(self, seqs: Tensor) -> Tensor:
        b, width = seqs.shape
        lengths = (seqs >= 0).sum(1)
        # right-align the left-padded rows so that packing reads each row's items from its first column
        idx = (torch.arange(width, device=seqs.device)[None, :] + (width - lengths)[:, None]).clamp(max=width - 1)
        items = seqs.gather(1, idx).clamp(min=0)
        out = torch.zeros(b, self.gru.hidden_size, dtype=self.out_emb.weight.dtype, device=seqs.device)
        has = lengths > 0
        if has.any():
            packed = pack_padded_sequence(self._inputs(items[has]), lengths[has].cpu(), batch_first=True,
                                          enforce_sorted=False)
            out[has] = self.gru(packed)[1][0]
        return out

    def output_vectors(self) -> tuple[Tensor, Tensor]:
        return self.out_emb.weight, self.out_bias

    # ------------------------------------------------------------------ training
    def _prepare(self, train: object) -> TrainSequences:
        """``train``: :class:`fastrec.data.Sessions`, time-ordered :class:`fastrec.data.Interactions` (each user's
        sequence is one session) or any histories form; sessions of 2+ events train."""
        return TrainSequences.build(train, self.n_items, 2, positives=False)

    def _batches(self, data: TrainSequences, batch_size: int, epoch: int, seed: int) -> Iterator[Step]:
        rng = np.random.default_rng([seed, epoch, 2])
        sampler = None
        if self.n_sample:
            weights = np.bincount(data.items, minlength=self.n_items).astype(np.float64) ** self.sample_alpha
            nobody = Interactions(np.zeros(2, np.int64), np.zeros(0, np.int32), n_items=self.n_items)
            sampler = NegativeSampler(nobody, distribution="popularity", item_weights=weights,
                                      seed=seed * 1_000_003 + epoch)
        items = torch.from_numpy(data.items)
        chunk = 64  # steps whose negatives are drawn in one sampler call (rows of the one empty user)
        negs = torch.zeros(chunk, 0, dtype=torch.long)
        for step, (pos, carry, started) in enumerate(session_parallel(data.offsets, data.rows, batch_size, rng)):
            if sampler is not None and step % chunk == 0:
                negs = torch.from_numpy(sampler.sample(np.zeros(chunk, np.int64), self.n_sample,
                                                       offset=step * self.n_sample).astype(np.int64))
            p = torch.from_numpy(pos)
            yield Step(items[p], items[p + 1], torch.from_numpy(carry), negs[step % chunk], started, batch_size)

    def _loss(self, batch: Step) -> tuple[Tensor, int]:
        inp, tgt, carry, neg = (t.to(self.device) for t in batch[:4])
        b = inp.shape[0]
        h0 = torch.zeros(b, self.gru.hidden_size, dtype=self.out_bias.dtype, device=inp.device)
        cont = carry >= 0
        if self._state is not None and cont.any():
            h0[cont] = self._state[carry[cont]]
        h = self.gru(self._inputs(inp)[:, None], h0[None])[1][0]
        self._state = h.detach()
        cand = torch.cat([tgt, neg])
        logits = self.drop(h) @ self.out_emb(cand).t() + self.out_bias[cand]
        # a candidate equal to the row's target is no negative
        same = cand[None, :] == tgt[:, None]
        same[torch.arange(b), torch.arange(b)] = False
        logits = logits.masked_fill(same, float("-inf"))
        pos = logits.diagonal()
        if self.loss_kind == "softmax":
            loss = F.cross_entropy(logits, torch.arange(b, device=logits.device), reduction="sum")
        else:
            negs = logits.clone()
            negs[torch.arange(b), torch.arange(b)] = float("-inf")
            weight = torch.softmax(negs, dim=1)
            diff = pos[:, None] - logits
            if self.loss_kind == "bpr-max":
                loss = (-torch.log((weight * torch.sigmoid(diff)).sum(1) + 1e-24)
                        + self.bpreg * (weight * logits.masked_fill(weight == 0, 0.0) ** 2).sum(1)).sum()
            else:
                sq = torch.sigmoid(logits.masked_fill(weight == 0, 0.0) ** 2)
                loss = (weight * (torch.sigmoid(-diff).masked_fill(weight == 0, 0.0) + sq)).sum(1).sum()
        return loss / batch.slots, batch.started

    def train(self, mode: bool = True) -> GRU4Rec:
        self._state = None  # a new pass starts from fresh sessions
        return super().train(mode)
