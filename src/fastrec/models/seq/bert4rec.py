"""BERT4Rec (Sun et al., CIKM 2019): a bidirectional Transformer trained by the cloze task.

Training masks random items of a user's sequence (each with probability ``mask_prob``; with probability
``last_prob`` a sequence instead gets only its last item masked, the paper's extra samples that match inference)
and predicts each masked item with a softmax over all items. Inference appends ``[MASK]`` after the history (which
keeps its last ``max_len - 1`` items) and reads the prediction at that position. With ``random_windows`` a sequence
longer than ``max_len`` trains each epoch on a random run of ``max_len`` consecutive items instead of its last ones
(the paper's code cuts such sequences into sliding windows), so all its items train. The output layer is the BERT head
(dense + GELU + LayerNorm) followed by the shared item embeddings plus a per-item bias.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastrec.models.seq._sequences import length_batches
from fastrec.models.seq._transformer import TransformerEncoder, positions_from_end
from fastrec.models.seq.base import SequentialRecommender, padded_rows
from fastrec.models.seq.train import TrainSequences

__all__ = ["BERT4Rec"]


class BERT4Rec(SequentialRecommender):
    """Bidirectional sequential recommendation with cloze training.

    Args:
        n_items: number of items (internal ids ``0 .. n_items - 1``).
        max_len: positions read, the appended [MASK] included (50 for Beauty in the paper, 200 for ML-1M).
        dim: embedding and model width.
        heads: attention heads.
        layers: Transformer blocks.
        dropout: dropout on embeddings, residual branches and attention weights (0.1 in the paper).
        mask_prob: cloze masking probability per item (0.2 for Beauty in the paper).
        last_prob: probability that a training sequence gets only its last item masked.
        random_windows: train a sequence longer than ``max_len`` on a random window of ``max_len`` consecutive
            items each epoch (default: always its last ``max_len`` items).
        bucket: length bucketing of training batches (see :class:`SASRec`).
        seed: seeds the initial weights.
    """

    def __init__(self, n_items: int, max_len: int = 50, dim: int = 64, heads: int = 2, layers: int = 2,
                 dropout: float = 0.1, mask_prob: float = 0.2, last_prob: float = 0.1, random_windows: bool = False,
                 bucket: int = 16, seed: int = 0) -> None:
        super().__init__(dict(n_items=n_items, max_len=max_len, dim=dim, heads=heads, layers=layers,
                              dropout=dropout, mask_prob=mask_prob, last_prob=last_prob, random_windows=random_windows,
                              bucket=bucket, seed=seed))
        for name, v in (("mask_prob", mask_prob), ("last_prob", last_prob)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2 (history + [MASK]), got {max_len}")
        self.mask_prob, self.last_prob, self.bucket = float(mask_prob), float(last_prob), int(bucket)
        self.random_windows = bool(random_windows)
        self.mask_token = n_items + 1
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            # row 0: padding, rows 1..n_items: items, row n_items + 1: [MASK]
            self.item_emb = nn.Embedding(n_items + 2, dim, padding_idx=0)
            self.pos_emb = nn.Embedding(max_len, dim)
            self.emb_ln = nn.LayerNorm(dim)
            self.emb_drop = nn.Dropout(dropout)
            self.encoder = TransformerEncoder(dim, heads, layers, 4 * dim, dropout, dropout, "gelu", causal=False)
            self.head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
            self.out_bias = nn.Parameter(torch.zeros(n_items))
            for p in self.parameters():
                if p.dim() > 1:
                    nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()

    def _hidden(self, tokens: Tensor) -> Tensor:
        """[B, L] embedding rows (0 = padding) -> [B, L, dim] head outputs."""
        x = self.item_emb(tokens) + self.pos_emb(positions_from_end(tokens.shape[1], tokens.device))
        return self.head(self.encoder(self.emb_drop(self.emb_ln(x)), tokens > 0))

    def encode(self, seqs: Tensor) -> Tensor:
        tokens = torch.cat([seqs[:, -(self.max_len - 1):] + 1,
                            torch.full((seqs.shape[0], 1), self.mask_token, dtype=seqs.dtype, device=seqs.device)], 1)
        return self._hidden(tokens)[:, -1]

    def output_vectors(self) -> tuple[Tensor, Tensor]:
        return self.item_emb.weight[1:self.n_items + 1], self.out_bias

    # ------------------------------------------------------------------ training
    def _prepare(self, train: object) -> TrainSequences:
        """``train``: time-ordered :class:`fastrec.data.Interactions` or any histories form; each sequence trains on
        its last ``max_len`` items (a random window of that many with ``random_windows``)."""
        return TrainSequences.build(train, self.n_items, 1, positives=False)

    def _batches(self, data: TrainSequences, batch_size: int, epoch: int, seed: int
                 ) -> Iterator[tuple[Tensor, Tensor, float]]:
        """(tokens, labels, masked items expected per row): the loss divides by the last times the batch's rows."""
        rng = np.random.default_rng([seed, epoch, 1])
        per_row = (self.mask_prob * (1.0 - self.last_prob) * float(np.minimum(data.lengths, self.max_len).mean())
                   + self.last_prob)
        for part in length_batches(data.lengths, batch_size, rng, self.bucket):
            rows = data.rows[part]
            ends = data.offsets[rows + 1]
            if self.random_windows:
                spare = np.maximum(ends - data.offsets[rows] - self.max_len, 0)
                ends = ends - rng.integers(0, spare + 1)
            seq = padded_rows(data.offsets, data.items, rows, self.max_len, ends).numpy()
            valid = seq >= 0
            masked = valid & (rng.random(seq.shape) < self.mask_prob)
            last_only = rng.random(seq.shape[0]) < self.last_prob
            masked[last_only] = False
            # every sequence predicts at least one item: the last-only ones, and those the draw left unmasked
            need_last = last_only | ~masked.any(axis=1)
            masked[need_last, -1] = True
            tokens = np.where(masked, self.mask_token, seq + 1)
            labels = np.where(masked, seq, -1)
            yield torch.from_numpy(tokens), torch.from_numpy(labels), per_row

    def _loss(self, batch: tuple[Tensor, Tensor, float]) -> tuple[Tensor, int]:
        """Cross-entropy summed over the masked items, divided by a constant per row of the batch rather than by the
        batch's own number of masked items: every masked item weighs the same in any batch. (A mean per batch would
        give the items of length-bucketed batches of short sequences several times the weight of those of long ones;
        on LastFM that cost about .02 validation NDCG@10 against random batches.)"""
        tokens, labels, per_row = batch
        tokens, labels = tokens.to(self.device), labels.to(self.device)
        sel = labels >= 0
        h = self._hidden(tokens)[sel]
        w, b = self.output_vectors()
        loss = F.cross_entropy(h @ w.t() + b, labels[sel], reduction="sum") / (per_row * tokens.shape[0])
        return loss, tokens.shape[0]
