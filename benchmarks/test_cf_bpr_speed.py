"""MF-BPR training throughput on Gowalla (29,858 users x 40,981 items, 64-d, batch 4096, one negative per positive,
row-wise sum loss with L2 on the batch rows): fastrec's ``MF.fit`` step (numba sampler + fused Adagrad inside the
embedding backward) against the same model written the plain way:

- plain: ``nn.Embedding`` tables, dense gradients, ``torch.optim.Adagrad``, negatives drawn in Python by rejection
  against per-user ``set()``s (the LightGCN / NGCF reference code's sampler);
- plain-sparse: the same with ``nn.Embedding(sparse=True)`` and sparse Adagrad (the better plain variant);
- plain-numpy: plain-sparse with the negatives drawn by vectorized numpy rejection (uniform draws, membership by
  searchsorted on sorted user * n_items + item keys, redraw the hits).

Each timed call is one training step including its negative sampling, interleaved and warm; samples/s = 4096 /
median step time.

    OMP_WAIT_POLICY=PASSIVE python -m pytest benchmarks/test_cf_bpr_speed.py -k target -s
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastrec.bench import time_interleaved
from fastrec.data import NegativeSampler, TripletBatches, load_user_item_lines
from fastrec.models.cf import MF

DATA = Path(os.environ.get("FASTREC_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
BATCH, DIM, REG, LR = 4096, 64, 1e-4, 0.05


@pytest.fixture(scope="module")
def gowalla():
    path = DATA / "gowalla" / "train.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return load_user_item_lines(path, user_ids="identity", item_ids="identity")


def _fastrec_step(train):
    model = MF(train.n_users, train.n_items, DIM, biases=False, optimizer="adagrad", lr=LR)
    model.set_seen(train)
    model.train()
    batches = TripletBatches(train, batch_size=BATCH, drop_last=True, sampler=NegativeSampler(train))
    it = iter(batches)

    def step():
        nonlocal it
        try:
            u, p, n = next(it)
        except StopIteration:
            it = iter(batches)
            u, p, n = next(it)
        pos, neg, reg = model._forward(u, p, None, n[:, 0])
        (-F.logsigmoid(pos - neg).sum() + 0.5 * REG * reg).backward()

    return step


class _Plain(nn.Module):
    def __init__(self, n_users: int, n_items: int, sparse: bool) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, DIM, sparse=sparse)
        self.item = nn.Embedding(n_items, DIM, sparse=sparse)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)

    def loss(self, u, p, n):
        eu, ep, en = self.user(u), self.item(p), self.item(n)
        x = (eu * (ep - en)).sum(1)
        return -F.logsigmoid(x).sum() + 0.5 * REG * (eu.square().sum() + ep.square().sum() + en.square().sum())


def _plain_step(train, sparse: bool, sampler: str):
    model = _Plain(train.n_users, train.n_items, sparse)
    opt = torch.optim.Adagrad(model.parameters(), lr=LR)
    rows, cols = train.rowids().astype(np.int64), train.indices.astype(np.int64)
    sets = [set(train.row(u).tolist()) for u in range(train.n_users)]
    keys = rows * train.n_items + cols  # sorted: CSR order
    rng = np.random.default_rng(0)
    n_items = train.n_items

    def python_negatives(users):
        out = []
        for u in users.tolist():
            s = sets[u]
            while True:
                j = random.randrange(n_items)
                if j not in s:
                    break
            out.append(j)
        return np.array(out)

    def numpy_negatives(users):
        neg = rng.integers(0, n_items, users.size)
        while True:
            k = users * n_items + neg
            pos = np.searchsorted(keys, k).clip(max=keys.size - 1)
            hit = keys[pos] == k
            if not hit.any():
                return neg
            neg[hit] = rng.integers(0, n_items, int(hit.sum()))

    draw = python_negatives if sampler == "python" else numpy_negatives

    def step():
        idx = rng.integers(0, rows.size, BATCH)
        u = rows[idx]
        n = draw(u)
        loss = model.loss(torch.from_numpy(u), torch.from_numpy(cols[idx]), torch.from_numpy(n))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def test_bpr_speedup_target(gowalla):
    cands = {"fastrec": _fastrec_step(gowalla), "plain": _plain_step(gowalla, False, "python"),
             "plain-sparse": _plain_step(gowalla, True, "python"), "plain-numpy": _plain_step(gowalla, True, "numpy")}
    t = time_interleaved(cands, rounds=9, warmup=2, max_seconds=60)
    print(f"\nMF-BPR step, batch {BATCH}, dim {DIM}, torch threads {torch.get_num_threads()}, "
          f"load {os.getloadavg()[0]:.1f}")
    for name, timing in t.items():
        print(f"{name:14s} {timing.median_ms:8.2f} ms  {BATCH / timing.median:12,.0f} samples/s  "
              f"fastrec speedup {timing.median / t['fastrec'].median:5.2f}x")
    assert t["plain"].median / t["fastrec"].median >= 2.0
