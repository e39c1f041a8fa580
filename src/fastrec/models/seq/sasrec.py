"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the history, next-item prediction at every position.

Input: item embeddings (shared with the output layer) times sqrt(dim) plus learned position embeddings, dropout, then
pre-LN causal self-attention blocks (:mod:`fastrec.models.seq._transformer`). A history's vector is the output at
its most recent item; item i scores ``h . E[i]``.

Training, as in the paper: every position of a user's training sequence predicts the next item, with binary
cross-entropy against one sampled negative per position (uniform over the items the user never interacted with,
drawn by :class:`fastrec.data.NegativeSampler`), or (``loss="softmax"``) cross-entropy over all items. The loss
weighs every predicted position alike in any batch (a sum divided by a constant per row, not a mean per batch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastrec.data import NegativeSampler
from fastrec.models.seq._sequences import length_batches
from fastrec.models.seq._transformer import TransformerEncoder, positions_from_end
from fastrec.models.seq.base import SequentialRecommender, padded_rows
from fastrec.models.seq.train import TrainSequences

__all__ = ["SASRec"]


class SASRec(SequentialRecommender):
    """Self-attentive sequential recommendation.

    Args:
        n_items: number of items (internal ids ``0 .. n_items - 1``).
        max_len: longest history read (the last ``max_len`` items); 50 in the paper for sparse data, 200 for ML-1M.
        dim: embedding and model width.
        heads: attention heads.
        layers: self-attention blocks.
        dropout: dropout on the embeddings and inside the blocks (0.5 for sparse data in the paper).
        attn_dropout: dropout on the attention weights (default: ``dropout``).
        loss: ``"bce"`` (one sampled negative per position, the paper) or ``"softmax"`` (full softmax over items).
        bucket: batches built from runs of ``bucket`` batches sorted by length and trimmed to their longest sequence
            (1: plain random batches, still trimmed). Only the batch composition changes, never a sequence's math.
        seed: seeds the initial weights.
    """

    def __init__(self, n_items: int, max_len: int = 50, dim: int = 64, heads: int = 1, layers: int = 2,
                 dropout: float = 0.5, attn_dropout: float | None = None, loss: str = "bce", bucket: int = 16,
                 seed: int = 0) -> None:
        super().__init__(dict(n_items=n_items, max_len=max_len, dim=dim, heads=heads, layers=layers,
                              dropout=dropout, attn_dropout=attn_dropout, loss=loss, bucket=bucket, seed=seed))
        if loss not in ("bce", "softmax"):
            raise ValueError(f"loss must be 'bce' or 'softmax', got {loss!r}")
        self.loss_kind = loss
        self.bucket = int(bucket)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)  # row 0: padding, row i+1: item i
            self.pos_emb = nn.Embedding(max_len, dim)
            self.emb_drop = nn.Dropout(dropout)
            self.encoder = TransformerEncoder(dim, heads, layers, dim, dropout,
                                              dropout if attn_dropout is None else attn_dropout, "relu", causal=True)
            for name, p in self.named_parameters():
                if p.dim() > 1:
                    nn.init.xavier_normal_(p)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()
        self.scale = math.sqrt(dim)

    def sequence_output(self, seqs: Tensor) -> Tensor:
        """[B, L] left-padded ids (-1 padding) -> [B, L, dim]: the state after each position."""
        valid = seqs >= 0
        x = self.item_emb(seqs + 1) * self.scale + self.pos_emb(positions_from_end(seqs.shape[1], seqs.device))
        return self.encoder(self.emb_drop(x), valid)

    def encode(self, seqs: Tensor) -> Tensor:
        return self.sequence_output(seqs)[:, -1]

    def output_vectors(self) -> tuple[Tensor, None]:
        return self.item_emb.weight[1:], None

    # ------------------------------------------------------------------ training
    def _prepare(self, train: object) -> TrainSequences:
        """``train``: time-ordered :class:`fastrec.data.Interactions` (e.g. ``leave_one_out(x).train``) or any
        histories form; each sequence of 2+ items trains on its last ``max_len + 1`` items."""
        return TrainSequences.build(train, self.n_items, 2, positives=self.loss_kind == "bce")

    def _batches(self, data: TrainSequences, batch_size: int, epoch: int, seed: int
                 ) -> Iterator[tuple[Tensor, Tensor, Tensor | None, float]]:
        """(inputs, targets, negatives or None, predicted positions per row on average over the training
        sequences): the loss divides by the last times the batch's rows."""
        rng = np.random.default_rng([seed, epoch])
        per_row = float((np.minimum(data.lengths, self.max_len + 1) - 1).mean())
        sampler = None if data.positives is None else NegativeSampler(data.positives, seed=seed * 1_000_003 + epoch)
        offset = 0
        for part in length_batches(data.lengths, batch_size, rng, self.bucket):
            rows = data.rows[part]
            seq = padded_rows(data.offsets, data.items, rows, self.max_len + 1)
            inp, tgt = seq[:, :-1], seq[:, 1:]
            neg = None
            if sampler is not None:
                neg = torch.from_numpy(sampler.sample(rows, tgt.shape[1], offset=offset).astype(np.int64))
                offset += neg.numel()
            yield inp, tgt, neg, per_row

    def _loss(self, batch: tuple[Tensor, Tensor, Tensor | None, float]) -> tuple[Tensor, int]:
        """The loss summed over the predicted positions, divided by a constant per row of the batch rather than by
        the batch's own number of positions: every position weighs the same in any batch. (The paper's mean per
        batch is the same in expectation over random batches, but length bucketing would give the positions of a
        batch of short sequences several times the weight of those of a batch of long ones.)"""
        inp, tgt, neg, per_row = batch
        inp, tgt = inp.to(self.device), tgt.to(self.device)
        h = self.sequence_output(inp)
        valid = tgt >= 0
        hv = h[valid]
        w = self.item_emb.weight
        if neg is None:
            total = F.cross_entropy(hv @ w[1:].t(), tgt[valid], reduction="sum")
        else:
            neg = neg.to(self.device)
            pos_logit = (hv * w[tgt[valid] + 1]).sum(-1)
            neg_logit = (hv * w[neg[valid] + 1]).sum(-1)
            total = -(F.logsigmoid(pos_logit) + F.logsigmoid(-neg_logit)).sum()
        return total / (per_row * inp.shape[0]), inp.shape[0]
