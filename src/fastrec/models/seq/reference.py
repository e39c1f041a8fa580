"""Plain reference implementation of SASRec, written the obvious way: the test oracle and the speed baseline.

What makes it "obvious" (the style of the public SASRec ports): every batch is padded to the full ``max_len``, the
attention matrix is formed explicitly (``softmax(QK^T / sqrt(d) + mask) V``), and the negatives are drawn in Python,
one ``random.randint`` loop per position with a set of the user's items for rejection. Its parameters have the same
names and shapes as :class:`fastrec.models.seq.SASRec`, so a state dict moves between the two and their outputs can
be compared exactly.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ReferenceSASRec", "python_negatives", "reference_batches"]


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, dim)
        self.ff2 = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        b, n, d = x.shape
        dh = d // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q = q.view(b, n, self.heads, dh).transpose(1, 2)
        k = k.view(b, n, self.heads, dh).transpose(1, 2)
        v = v.view(b, n, self.heads, dh).transpose(1, 2)
        att = q @ k.transpose(-1, -2) / math.sqrt(dh)                       # [B, H, L, L]
        allowed = torch.tril(torch.ones(n, n, dtype=torch.bool))[None, None] & valid[:, None, None, :]
        allowed = allowed | torch.eye(n, dtype=torch.bool)                  # padding rows see themselves
        att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        att = self.drop(att)
        a = (att @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.drop(self.proj(a))
        return x + self.drop(self.ff2(self.drop(torch.relu(self.ff1(self.ln2(x))))))


class _Encoder(nn.Module):
    def __init__(self, dim: int, heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)


class ReferenceSASRec(nn.Module):
    """SASRec with an explicit attention matrix over full-width (``max_len``) left-padded batches."""

    def __init__(self, n_items: int, max_len: int = 50, dim: int = 64, heads: int = 1, layers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.n_items, self.max_len, self.dim = n_items, max_len, dim
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.emb_drop = nn.Dropout(dropout)
        self.encoder = _Encoder(dim, heads, layers, dropout)

    def sequence_output(self, seqs: Tensor) -> Tensor:
        """[B, max_len] left-padded ids (-1 padding) -> [B, max_len, dim]."""
        n = seqs.shape[1]
        positions = torch.arange(n - 1, -1, -1)  # 0 at the last column
        x = self.item_emb(seqs + 1) * math.sqrt(self.dim) + self.pos_emb(positions)[None]
        x = self.emb_drop(x)
        valid = seqs >= 0
        for block in self.encoder.blocks:
            x = block(x, valid)
        return self.encoder.ln(x)

    def loss(self, inp: Tensor, tgt: Tensor, neg: Tensor) -> Tensor:
        h = self.sequence_output(inp)
        pos_logit = (h * self.item_emb(tgt + 1)).sum(-1)
        neg_logit = (h * self.item_emb(neg + 1)).sum(-1)
        valid = (tgt >= 0).float()
        bce = -(torch.log(torch.sigmoid(pos_logit) + 1e-24) + torch.log(1 - torch.sigmoid(neg_logit) + 1e-24))
        return (bce * valid).sum() / valid.sum()


def python_negatives(user_items: set[int], n_items: int, count: int, rng: random.Random) -> list[int]:
    """``count`` items outside ``user_items``, by rejection, one Python call per draw."""
    out = []
    for _ in range(count):
        t = rng.randint(0, n_items - 1)
        while t in user_items:
            t = rng.randint(0, n_items - 1)
        out.append(t)
    return out


def reference_batches(sequences: list[np.ndarray], n_items: int, max_len: int, batch_size: int, seed: int):
    """One epoch of (inp, tgt, neg) [B, max_len] batches in random order: each sequence's last ``max_len + 1``
    items, padded to the full width, a Python-drawn negative for every real position."""
    rng = random.Random(seed)
    order = list(range(len(sequences)))
    rng.shuffle(order)
    sets = [set(s.tolist()) for s in sequences]
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        inp = np.full((len(rows), max_len), -1, np.int64)
        tgt = np.full((len(rows), max_len), -1, np.int64)
        neg = np.full((len(rows), max_len), -1, np.int64)
        for r, u in enumerate(rows):
            s = sequences[u][-(max_len + 1):]
            n = len(s) - 1
            inp[r, max_len - n:] = s[:-1]
            tgt[r, max_len - n:] = s[1:]
            neg[r, max_len - n:] = python_negatives(sets[u], n_items, n, rng)
        yield torch.from_numpy(inp), torch.from_numpy(tgt), torch.from_numpy(neg)
