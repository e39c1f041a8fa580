"""Batch iterators: coverage of every entry per epoch, exclusion, determinism, worker sharding, CTR rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastrec.data import Interactions, NegativeSampler
from fastrec.data.batching import CTRBatches, PointwiseBatches, TripletBatches
from fastrec.data.loaders import CTRData


@pytest.fixture(scope="module")
def inter() -> Interactions:
    rng = np.random.default_rng(0)
    pairs = rng.choice(50 * 40, 700, replace=False)
    return Interactions.from_arrays(pairs // 40, pairs % 40, user_ids="identity", item_ids="identity", n_items=40)


def test_triplets_cover_each_entry_once(inter):
    ds = TripletBatches(inter, batch_size=64, n_neg=3, seed=1)
    assert len(ds) == 11
    batches = list(ds)
    users = torch.cat([b[0] for b in batches]).numpy()
    pos = torch.cat([b[1] for b in batches]).numpy()
    neg = torch.cat([b[2] for b in batches]).numpy()
    assert neg.shape == (700, 3) and neg.dtype == np.int64
    r, c, _ = inter.to_coo()
    assert sorted(zip(users.tolist(), pos.tolist())) == sorted(zip(r.tolist(), c.tolist()))
    dense = inter.to_scipy().toarray() > 0
    assert dense[users, pos].all() and not dense[users[:, None], neg].any()
    second = list(ds)  # next epoch: a new shuffle and new negatives
    assert not torch.equal(second[0][0], batches[0][0])
    ds.set_epoch(0)
    again = list(ds)
    for a, b in zip(batches, again):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_worker_shards_reassemble_the_epoch(inter):
    ds = TripletBatches(inter, batch_size=50, n_neg=2, seed=4, sampler=NegativeSampler(inter, distribution="mixed"))
    whole = list(ds.epoch_batches(3))
    shards = [list(ds.epoch_batches(3, w, 3)) for w in range(3)]
    merged = [shards[b % 3][b // 3] for b in range(len(whole))]
    for a, b in zip(whole, merged):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    loader = torch.utils.data.DataLoader(ds, batch_size=None)
    assert len(list(loader)) == len(ds)


def test_pointwise(inter):
    ds = PointwiseBatches(inter, batch_size=100, n_neg=4, shuffle=False, drop_last=True)
    assert len(ds) == 7
    users, items, labels = next(iter(ds))
    assert users.shape == items.shape == labels.shape == (500,)
    assert labels.view(100, 5)[:, 0].eq(1).all() and labels.view(100, 5)[:, 1:].eq(0).all()
    dense = inter.to_scipy().toarray() > 0
    assert (dense[users.numpy(), items.numpy()] == labels.numpy().astype(bool)).all()
    r, c, _ = inter.to_coo()
    assert users.view(100, 5)[:, 0].tolist() == r[:100].tolist() and items.view(100, 5)[:, 0].tolist() == c[:100].tolist()


def test_ctr_batches():
    fixed = CTRData(np.array([1, -1, 1], np.float32), np.array([0, 2, 4, 6]), np.array([0, 5, 1, 6, 2, 7]),
                    np.ones(6, np.float32))
    ids, vals, labels = next(iter(CTRBatches(fixed, batch_size=2, shuffle=False)))
    assert ids.tolist() == [[0, 5], [1, 6]] and labels.tolist() == [1.0, 0.0] and vals.shape == (2, 2)
    jag = CTRData(np.array([1, 0, 1], np.float32), np.array([0, 1, 4, 6]), np.arange(6), np.arange(6, dtype=np.float32))
    ds = CTRBatches(jag, batch_size=3, seed=2)
    flat, offsets, vals, labels = next(iter(ds))
    rows = ds.order(0)
    assert offsets.tolist() == np.concatenate([[0], np.cumsum(np.diff(jag.indptr)[rows])]).tolist()
    assert flat.tolist() == np.concatenate([np.arange(jag.indptr[r], jag.indptr[r + 1]) for r in rows]).tolist()
    assert labels.tolist() == jag.labels[rows].tolist()


def test_bad_arguments(inter):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        TripletBatches(inter, batch_size=0)
    with pytest.raises(ValueError, match="n_neg must be an integer >= 1"):
        TripletBatches(inter, n_neg=0)
    other = Interactions.from_arrays([0], [0])
    with pytest.raises(ValueError, match="must share one id space"):
        TripletBatches(inter, sampler=NegativeSampler(other))
    with pytest.raises(TypeError, match="interactions must be Interactions"):
        TripletBatches(np.zeros(3))
