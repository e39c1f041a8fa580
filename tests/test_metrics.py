"""fastrec.metrics against scikit-learn, hand-worked cases and brute-force per-user loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from fastrec import metrics as M

from _oracles import brute_ranking_metrics

# ---------------------------------------------------------------------------------------------- CTR / pointwise


@pytest.mark.parametrize("seed", range(5))
def test_auc_logloss_rmse_mae_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 500
    y = rng.integers(0, 2, n)
    # rounded scores create many ties, which AUC must count 1/2 like sklearn
    p = np.clip(np.round(rng.random(n) * 0.6 + 0.4 * y * rng.random(n), 2), 0.01, 0.99)
    assert M.auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    r = rng.normal(3, 1, n)
    r_hat = r + rng.normal(0, 0.5, n)
    assert M.rmse(r, r_hat) == pytest.approx(math.sqrt(skm.mean_squared_error(r, r_hat)), abs=1e-12)
    assert M.mae(r, r_hat) == pytest.approx(skm.mean_absolute_error(r, r_hat), abs=1e-12)


def test_logloss_from_logits_matches_probabilities():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 1000)
    y = (rng.random(1000) < 1 / (1 + np.exp(-logits))).astype(int)
    probs = 1 / (1 + np.exp(-logits))
    assert M.log_loss(y, logits, from_logits=True) == pytest.approx(skm.log_loss(y, probs), rel=1e-9)
    # extreme logits stay finite and exact (no clipping needed)
    assert M.log_loss([1, 0], [100.0, -100.0], from_logits=True) == pytest.approx(math.log1p(math.exp(-100)))


def test_auc_hand_worked_and_tensor_input():
    # positives 0.9, 0.5; negatives 0.5, 0.1 -> pairs: (.9>.5) 1, (.9>.1) 1, (.5=.5) 1/2, (.5>.1) 1 -> 3.5 / 4
    assert M.auc(torch.tensor([1, 1, 0, 0]), torch.tensor([0.9, 0.5, 0.5, 0.1])) == 0.875


def test_group_auc_matches_loop_over_sklearn():
    rng = np.random.default_rng(3)
    n = 2000
    g = rng.integers(0, 60, n)
    y = rng.integers(0, 2, n)
    s = np.round(rng.random(n) + 0.3 * y, 1)
    g[g == 7] = 8  # make sure some groups are mixed with others
    y[g == 5] = 1  # a single-class group: skipped and counted
    num = den = 0.0
    used = skipped = 0
    for grp in np.unique(g):
        m = g == grp
        if len(np.unique(y[m])) < 2:
            skipped += 1
            continue
        num += m.sum() * skm.roc_auc_score(y[m], s[m])
        den += m.sum()
        used += 1
    res = M.group_auc(g, y, s)
    assert res.value == pytest.approx(num / den, abs=1e-12)
    assert (res.n_groups, res.n_skipped) == (used, skipped)
    uni = M.group_auc(g, y, s, weighting="uniform").value
    per = [skm.roc_auc_score(y[g == grp], s[g == grp]) for grp in np.unique(g) if len(np.unique(y[g == grp])) == 2]
    assert uni == pytest.approx(np.mean(per), abs=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: M.auc([1, 1, 1], [0.2, 0.3, 0.4]), "both classes"),
        (lambda: M.auc([1, 0], [0.2, float("nan")]), "y_score: contains 1 NaN"),
        (lambda: M.auc([1, 0, 2], [0.2, 0.3, 0.1]), "0 or 1"),
        (lambda: M.log_loss([1, 0], [0.2]), "differ in length"),
        (lambda: M.log_loss([1, 0], [1.2, 0.3]), r"\[0, 1\]"),
        (lambda: M.rmse([], []), "empty"),
        (lambda: M.group_auc([1, 1, 2], [1, 1, 0], [0.1, 0.2, 0.3]), "no group has both"),
    ],
)
def test_ctr_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------- ranking


def _hits(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_ranking_hand_worked():
    # user 0: relevant at positions 0 and 2 of top-4, R = 3; user 1: relevant at position 3, R = 1
    h = _hits([[1, 0, 1, 0], [0, 0, 0, 1]])
    n = torch.tensor([3, 1])
    assert M.hit_rate(h).tolist() == [1.0, 1.0]
    assert M.precision(h).tolist() == [0.5, 0.25]
    assert M.recall(h, n).tolist() == pytest.approx([2 / 3, 1.0])
    assert M.recall(h[:, :2], n, "min_k").tolist() == pytest.approx([1 / 2, 0.0])
    assert M.mrr(h).tolist() == pytest.approx([1.0, 0.25])
    # AP@4 user 0: (1/1 + 2/3) / min(4, 3); user 1: (1/4) / 1
    assert M.average_precision(h, n).tolist() == pytest.approx([(1 + 2 / 3) / 3, 0.25])
    dcg0 = 1 + 1 / math.log2(4)
    idcg0 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert M.ndcg(h, n).tolist() == pytest.approx([dcg0 / idcg0, (1 / math.log2(5)) / 1.0])


def test_graded_ndcg_hand_worked_and_sklearn():
    # gains in ranked order [3, 0, 1]; the user's relevant gains are {3, 2, 1} (the 2 is not in the top 3)
    h = _hits([[3, 0, 1]])
    ideal = _hits([[3, 2, 1]])
    dcg = 3 + 1 / 2
    idcg = 3 + 2 / math.log2(3) + 1 / 2
    assert M.ndcg(h, ideal=ideal).item() == pytest.approx(dcg / idcg)
    # sklearn: scores that rank items a, b, c, d with true relevance 3, 0, 1, 2 (no ties)
    assert M.ndcg(h, ideal=ideal).item() == pytest.approx(
        skm.ndcg_score([[3, 0, 1, 2]], [[4, 3, 2, 1]], k=3), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_ranking_against_brute_force_loops(seed):
    rng = np.random.default_rng(seed)
    n, k = 200, 12
    n_rel = rng.integers(1, 20, n)
    hits = np.zeros((n, k))
    graded = np.zeros((n, k))
    ideal = np.zeros((n, k))
    for u in range(n):
        pos = rng.choice(k, min(k, int(rng.integers(0, n_rel[u] + 1))), replace=False)
        hits[u, pos] = 1
        gains = rng.integers(1, 4, n_rel[u]).astype(float)
        graded[u, pos] = gains[: pos.size]
        srt = np.sort(gains)[::-1][:k]
        ideal[u, : srt.size] = srt
    h, g, nr = torch.from_numpy(hits), torch.from_numpy(graded), torch.from_numpy(n_rel)
    for kk in (1, 5, k):
        got = {"hr": M.hit_rate(h[:, :kk]), "precision": M.precision(h[:, :kk]), "recall": M.recall(h[:, :kk], nr),
               "recall_min": M.recall(h[:, :kk], nr, "min_k"), "mrr": M.mrr(h[:, :kk]),
               "map": M.average_precision(h[:, :kk], nr), "ndcg": M.ndcg(h[:, :kk], nr)}
        graded_ndcg = M.ndcg(g[:, :kk], ideal=torch.from_numpy(ideal))
        for u in range(n):
            want = brute_ranking_metrics(hits[u].tolist(), int(n_rel[u]), [1.0] * min(int(n_rel[u]), k), kk)
            for name, v in got.items():
                assert v[u].item() == pytest.approx(want[name], abs=1e-12), (name, u, kk)
            want_g = brute_ranking_metrics(graded[u].tolist(), int(n_rel[u]), ideal[u].tolist(), kk)
            assert graded_ndcg[u].item() == pytest.approx(want_g["ndcg"], abs=1e-12)


def test_ranking_bad_input():
    h = _hits([[1, 0]])
    with pytest.raises(ValueError, match="n_relevant"):
        M.recall(h, torch.tensor([0]))
    with pytest.raises(ValueError, match="hits"):
        M.precision(torch.ones(3))
    with pytest.raises(ValueError, match="denominator"):
        M.recall(h, torch.tensor([1]), "bogus")
    with pytest.raises(ValueError, match="pass n_relevant"):
        M.ndcg(h)


# ---------------------------------------------------------------------------------------------- beyond accuracy


def test_coverage_and_diversity():
    topk = np.array([[0, 1, -1], [1, 2, 3]])
    assert M.catalog_coverage(topk, 8) == 4 / 8
    v = np.array([[1.0, 0], [0, 1.0], [1.0, 1.0], [-1.0, 0]])
    # list 0: items 0, 1 -> 1 - cos = 1; list 1: pairs (1,2) 1-1/sqrt2, (1,3) 1, (2,3) 1+1/sqrt2 -> mean 1
    assert M.intra_list_diversity(topk, v) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(50, 6))
    lists = rng.choice(50, size=(30, 7))
    un = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    brute = np.mean([np.mean([1 - un[a] @ un[b] for i, a in enumerate(row) for b in row[i + 1 :]]) for row in lists])
    assert M.intra_list_diversity(lists, vecs) == pytest.approx(brute, abs=1e-12)
    with pytest.raises(ValueError, match="out of range"):
        M.catalog_coverage(topk, 3)
    with pytest.raises(ValueError, match="zero-norm"):
        M.intra_list_diversity(topk, np.zeros((4, 2)))
