"""Quality checks of the evaluation itself on real data: a trivial model (item popularity) under two published
protocols. Skipped when ../shared/data (or $FASTREC_DATA) does not hold the files.

- LastFM, S3-Rec protocol: leave-one-out (the last item of each time-ordered line is the test item), candidates = the
  test item + the user's 99 negatives from LastFM_sample.txt, popularity counted over the training portion (each
  user's history before the test item). The S3-Rec paper's PopRec row: HR@10 = .3037, NDCG@10 = .1687.
- Gowalla, LightGCN split: full ranking over all 40,981 items with train items excluded; there is no published PopRec
  row here, so the test pins the value this protocol gives (Recall@20 .0416, NDCG@20 .0317, which is also the
  MostPop row several later papers print for this split).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fastrec.data import load_user_item_lines, read_user_item_lines
from fastrec.evaluate import full_ranking, sampled_ranking

DATA = Path(os.environ.get("FASTREC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
LASTFM = DATA / "lastfm"
GOWALLA = DATA / "gowalla"


def lastfm_protocol():
    """(users, targets, negatives, popularity) of the S3-Rec LastFM protocol, ids as in the files (1-based)."""
    inter = load_user_item_lines(LASTFM / "LastFM.txt", user_ids="identity", item_ids="identity",
                                 positions_as_timestamps=True)
    offsets, items = inter.sequences()
    lengths = np.diff(offsets)
    users = np.flatnonzero(lengths > 0)
    targets = items[offsets[users + 1] - 1].astype(np.int64)
    is_last = np.zeros(items.size, dtype=bool)
    is_last[offsets[users + 1] - 1] = True
    popularity = np.bincount(items[~is_last], minlength=inter.n_items).astype(np.float32)
    line_users, neg_users, neg_items, _ = read_user_item_lines(LASTFM / "LastFM_sample.txt")
    n_neg = neg_items.size // line_users.size
    negatives = np.full((inter.n_users, n_neg), -1, dtype=np.int64)
    negatives[line_users] = neg_items.reshape(line_users.size, n_neg)
    return users, targets, negatives[users], popularity


@pytest.mark.skipif(not (LASTFM / "LastFM_sample.txt").exists(), reason="LastFM data not available")
def test_lastfm_poprec_sampled_protocol_reproduces_s3rec():
    users, targets, negatives, popularity = lastfm_protocol()
    assert users.size == 1090 and negatives.shape == (1090, 99) and (negatives >= 0).all()
    pop = torch.from_numpy(popularity)
    score = lambda u, items: pop[items]  # noqa: E731
    got = {ties: sampled_ranking(score, users, targets, negatives, ks=10, ties=ties, n_items=popularity.size)
           for ties in ("pessimistic", "average", "optimistic")}
    # the published row, within 0.01, under the documented "average" tie rule (expected value over tie orders)
    assert got["average"]["hr@10"] == pytest.approx(0.3037, abs=0.01)
    assert got["average"]["ndcg@10"] == pytest.approx(0.1687, abs=0.01)
    # the values of each rule, pinned (computed independently by a per-user loop in the test below)
    assert got["pessimistic"]["hr@10"] == pytest.approx(0.2908, abs=5e-4)
    assert got["average"]["hr@10"] == pytest.approx(0.2950, abs=5e-4)
    assert got["optimistic"]["hr@10"] == pytest.approx(0.2991, abs=5e-4)
    # popularity has many ties: the rules must bracket each other
    assert got["pessimistic"]["ndcg@10"] < got["average"]["ndcg@10"] < got["optimistic"]["ndcg@10"]


@pytest.mark.skipif(not (LASTFM / "LastFM_sample.txt").exists(), reason="LastFM data not available")
def test_lastfm_poprec_against_a_plain_python_loop():
    """An independent parse and per-user loop (no fastrec code) for the pessimistic rule."""
    seqs = {}
    for line in (LASTFM / "LastFM.txt").read_text().splitlines():
        p = line.split()
        seqs[int(p[0])] = [int(x) for x in p[1:]]
    negs = {}
    for line in (LASTFM / "LastFM_sample.txt").read_text().splitlines():
        p = line.split()
        negs[int(p[0])] = [int(x) for x in p[1:]]
    pop: dict[int, int] = {}
    for s in seqs.values():
        for i in s[:-1]:
            pop[i] = pop.get(i, 0) + 1
    hr = ndcg = 0.0
    for u, s in seqs.items():
        t = pop.get(s[-1], 0)
        rank = sum(pop.get(n, 0) >= t for n in negs[u])  # ties counted against the target
        if rank < 10:
            hr += 1
            ndcg += 1 / np.log2(rank + 2)
    users, targets, negatives, popularity = lastfm_protocol()
    pop_t = torch.from_numpy(popularity)
    got = sampled_ranking(lambda u, items: pop_t[items], users, targets, negatives, ks=10)
    assert got["hr@10"] == pytest.approx(hr / len(seqs), abs=1e-12)
    assert got["ndcg@10"] == pytest.approx(ndcg / len(seqs), abs=1e-12)


@pytest.mark.skipif(not (GOWALLA / "test.txt").exists(), reason="Gowalla data not available")
def test_gowalla_poprec_full_ranking():
    kw = dict(user_ids="identity", item_ids="identity", n_users=29858, n_items=40981)
    train = load_user_item_lines(GOWALLA / "train.txt", **kw)
    test = load_user_item_lines(GOWALLA / "test.txt", **kw)
    assert (train.nnz, test.nnz) == (810128, 217242)
    pop = torch.from_numpy(np.bincount(train.indices, minlength=train.n_items).astype(np.float32))
    res = full_ranking(lambda u: pop.expand(len(u), -1), test, train, ks=20, metrics=("recall", "ndcg"),
                       block_size=2048)
    assert res.n_users == 29858 and res.n_skipped == 0 and res.n_relevant_excluded == 0
    assert res["recall@20"] == pytest.approx(0.0416, abs=5e-4)
    assert res["ndcg@20"] == pytest.approx(0.0317, abs=5e-4)
