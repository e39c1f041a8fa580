"""fastrec.evaluate protocols against brute-force per-user Python loops, tie rules, bad input, CTR and the report."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn import metrics as skm

from fastrec.evaluate import (
    Leaderboard,
    dot_scorer,
    evaluate_ctr,
    full_ranking,
    full_scorer,
    pair_scorer,
    sampled_ranking,
)
from fastrec.evaluate.sampled import metrics_from_counts, target_rank_counts

from _oracles import brute_ranking_metrics

# ------------------------------------------------------------------------------------------- brute-force oracle


def brute_full(scores: np.ndarray, test: sp.csr_matrix, train: sp.csr_matrix | None, k: int, ties: str,
               graded: bool = False) -> tuple[dict[str, float], int]:
    """Full ranking by sorting every user's candidate list with an explicit key."""
    sums: dict[str, float] = {}
    n = 0
    for u in range(scores.shape[0]):
        gains = {int(i): (float(g) if graded else 1.0) for i, g in zip(test[u].indices, test[u].data)}
        seen = set(train[u].indices.tolist()) if train is not None else set()
        gains = {i: g for i, g in gains.items() if i not in seen and g > 0}
        if not gains:
            continue
        cands = [i for i in range(scores.shape[1]) if i not in seen]
        if ties == "pessimistic":  # equal scores: irrelevant first, then relevant by increasing gain
            key = lambda i: (-scores[u, i], i in gains, gains.get(i, 0.0), i)  # noqa: E731
        else:  # optimistic: relevant first, by decreasing gain
            key = lambda i: (-scores[u, i], i not in gains, -gains.get(i, 0.0), i)  # noqa: E731
        ranked = sorted(cands, key=key)
        m = brute_ranking_metrics([gains.get(i, 0.0) for i in ranked], len(gains), list(gains.values()), k)
        for name, v in m.items():
            sums[name] = sums.get(name, 0.0) + v
        n += 1
    return {name: v / n for name, v in sums.items()}, n


def random_data(seed: int, n_users: int = 60, n_items: int = 40, tie_levels: int | None = 4):
    rng = np.random.default_rng(seed)
    train = sp.random(n_users, n_items, density=0.15, format="csr", random_state=seed)
    test = sp.random(n_users, n_items, density=0.12, format="csr", random_state=seed + 100)
    test.data = rng.integers(1, 4, test.nnz).astype(float)  # graded gains 1..3
    if tie_levels is None:
        scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    else:  # few distinct values: ties everywhere, including at the K-th place
        scores = rng.integers(0, tie_levels, size=(n_users, n_items)).astype(np.float32)
    return scores, test, train


ALL = ("hr", "recall", "precision", "ndcg", "mrr", "map")


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
@pytest.mark.parametrize("seed, tie_levels", [(0, 3), (1, 5), (2, None), (3, 2)])
def test_full_ranking_matches_brute_force(seed, tie_levels, ties):
    scores, test, train = random_data(seed, tie_levels=tie_levels)
    s = torch.from_numpy(scores)
    for graded in (False, True):
        for with_train in (True, False):
            tr = train if with_train else None
            res = full_ranking(lambda u: s[u], test, tr, ks=(1, 5, 10), metrics=ALL, ties=ties, graded=graded,
                               block_size=7)
            for k in (1, 5, 10):
                want, n = brute_full(scores, test, tr, k, ties, graded)
                assert res.n_users == n
                for m in ALL:
                    if graded and m != "ndcg":
                        continue  # graded gains only change NDCG
                    assert res[f"{m}@{k}"] == pytest.approx(want[m], abs=1e-12), (m, k, graded, with_train)


def test_full_ranking_ties_cannot_win_by_item_order():
    # all scores equal: pessimistically no relevant item is ahead of an irrelevant one -> every metric is 0,
    # whatever the item ids of the test items (e.g. item 0, which an index-order tie-break would rank first)
    test = sp.csr_matrix(np.eye(6, 50))
    res = full_ranking(lambda u: torch.zeros(len(u), 50), test, ks=(10,), metrics=ALL)
    assert all(v == 0.0 for v in res.metrics.values())
    opt = full_ranking(lambda u: torch.zeros(len(u), 50), test, ks=(10,), metrics=("hr",), ties="optimistic")
    assert opt["hr@10"] == 1.0
    # reversing the item order (relabelling) leaves pessimistic results unchanged
    scores, te, tr = random_data(5, tie_levels=3)
    perm = np.random.default_rng(0).permutation(scores.shape[1])
    a = full_ranking(lambda u: torch.from_numpy(scores)[u], te, tr, ks=5, metrics=ALL)
    b = full_ranking(lambda u: torch.from_numpy(scores[:, perm])[u], te[:, perm], tr[:, perm], ks=5, metrics=ALL)
    for name in a.metrics:
        assert a[name] == pytest.approx(b[name], abs=1e-12)


def test_full_ranking_counts_skips_exclusions_and_per_user():
    test = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=float))
    train = sp.csr_matrix(np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float))
    scores = torch.tensor([[4.0, 3, 2, 1]]).expand(4, 4)
    res = full_ranking(lambda u: scores[u], test, train, ks=2, metrics=("hr", "recall", "coverage"),
                       return_per_user=True)
    # user 1 has no test item; user 3's only test item is a train item (excluded): both skipped and counted
    assert res.n_users == 2 and res.n_skipped == 2 and res.n_relevant_excluded == 2
    assert res.users.tolist() == [0, 2]
    # user 0 ranks [0, 1, 3] -> item 0 hit; user 2 ranks [0, 2, 3] -> item 2 at position 1 (item 1 excluded)
    assert res.per_user["hr@2"].tolist() == [1.0, 1.0]
    assert res["recall@2"] == 1.0
    assert res["coverage@2"] == pytest.approx(3 / 4)  # items 0, 1 (user 0) and 0, 2 (user 2)
    sub = full_ranking(lambda u: scores[u], test, train, ks=2, users=[0, 1])
    assert sub.n_users == 1 and sub.n_skipped == 1


def test_full_ranking_accepts_interactions_and_dot_scorer():
    from fastrec.data import Interactions

    scores, test, train = random_data(7, tie_levels=None)
    rng = np.random.default_rng(0)
    u, v = torch.from_numpy(rng.normal(size=(60, 8))).float(), torch.from_numpy(rng.normal(size=(40, 8))).float()
    test.data[:] = 1
    a = full_ranking(dot_scorer(u, v), Interactions.from_scipy(test), Interactions.from_scipy(train), ks=10)
    b = full_ranking(lambda users: u[users] @ v.T, test, train, ks=10, block_size=3)
    assert a.metrics == pytest.approx(b.metrics, abs=1e-12)
    # a pointwise model through full_scorer gives the same numbers
    c = full_ranking(full_scorer(lambda uu, ii: (u[uu] * v[ii]).sum(-1), 40, chunk=100), test, train, ks=10)
    assert c.metrics == pytest.approx(b.metrics, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ks=0), "ks: K must be >= 1"),
        (dict(ks=(5, 41)), "exceeds the number of candidate items"),
        (dict(users=[0, 60]), "users: 1 id"),
        (dict(metrics=("ndgc",)), "metrics: unknown"),
        (dict(ties="average"), "ties"),
        (dict(users=[]), "none of the 0 requested users"),
    ],
)
def test_full_ranking_bad_arguments(kwargs, match):
    scores, test, train = random_data(0)
    with pytest.raises(ValueError, match=match):
        full_ranking(lambda u: torch.from_numpy(scores)[u], test, train, **kwargs)


def test_full_ranking_bad_scores():
    _, test, train = random_data(0)
    bad = torch.zeros(60, 40)
    bad[17, 3] = float("nan")
    with pytest.raises(ValueError, match="scores: score_fn returned NaN"):
        full_ranking(lambda u: bad[u].clone(), test, None, ks=5)
    with pytest.raises(ValueError, match="score_fn: expected scores of shape"):
        full_ranking(lambda u: torch.zeros(len(u), 39), test, train, ks=5)
    with pytest.raises(ValueError, match="train: shape"):
        full_ranking(lambda u: torch.zeros(len(u), 40), test, train[:, :30], ks=5)
    with pytest.raises(TypeError, match="test: expected a scipy.sparse"):
        full_ranking(lambda u: torch.zeros(len(u), 40), np.zeros((3, 3)), ks=1)
    # the evaluator never writes into the caller's score storage (views are copied before masking)
    stored = torch.ones(60, 40)
    full_ranking(lambda u: stored[: len(u)], test, train, ks=5, block_size=60)
    assert bool((stored == 1).all())


# ------------------------------------------------------------------------------------------- sampled ranking


def brute_sampled(target_score: float, neg_scores: np.ndarray, k: int, ties: str) -> dict[str, float]:
    """Places the target at every position inside its tie group and averages (or picks the worst/best)."""
    greater = int((neg_scores > target_score).sum())
    equal = int((neg_scores == target_score).sum())
    ranks = {"pessimistic": [greater + equal], "optimistic": [greater],
             "average": list(range(greater, greater + equal + 1))}[ties]
    per = [{"hr": float(r < k), "ndcg": (1 / math.log2(r + 2)) if r < k else 0.0,
            "mrr": (1 / (r + 1)) if r < k else 0.0} for r in ranks]
    return {m: float(np.mean([p[m] for p in per])) for m in ("hr", "ndcg", "mrr")}


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic", "average"])
def test_sampled_ranking_matches_brute_force(ties):
    rng = np.random.default_rng(1)
    n_users, n_items, n_neg = 300, 200, 20
    item_score = rng.integers(0, 6, n_items).astype(np.float32)  # popularity-like, heavy ties
    targets = rng.integers(0, n_items, n_users)
    negs = np.stack([rng.choice(np.setdiff1d(np.arange(n_items), [t]), n_neg, replace=False) for t in targets])
    fn = lambda u, items: torch.from_numpy(item_score)[items]  # noqa: E731
    res = sampled_ranking(fn, np.arange(n_users), targets, negs, ks=(1, 5, 10), metrics=("hr", "ndcg", "mrr"),
                          ties=ties, block_size=64)
    for k in (1, 5, 10):
        want = [brute_sampled(item_score[t], item_score[n], k, ties) for t, n in zip(targets, negs)]
        for m in ("hr", "ndcg", "mrr"):
            assert res[f"{m}@{k}"] == pytest.approx(np.mean([w[m] for w in want]), abs=1e-12)


def test_target_position_in_candidate_list_cannot_matter():
    """The SASRec-port bug: a target tied with negatives winning because it sits first in the list."""
    rng = np.random.default_rng(2)
    b, c = 500, 100
    scores = torch.from_numpy(rng.integers(0, 30, size=(b, c)).astype(np.float32))  # ties everywhere
    target = torch.full((b, 1), 27.0)  # ~6 negatives above it, ~3 tied: the tie group straddles K = 10
    negs = scores[:, : c - 1]
    vals = []
    for pos in (0, 50, c - 1):
        cand = torch.cat([negs[:, :pos], target, negs[:, pos:]], dim=1)
        g, e = target_rank_counts(cand, pos)
        vals.append(metrics_from_counts(g.numpy(), e.numpy(), c - 1, (10,), ("hr", "ndcg"))["ndcg@10"].mean())
        # a position-dependent rule (stable argsort, target wins ties when first) really differs here:
        naive = (torch.argsort(-cand, dim=1, stable=True) == pos).float().argmax(dim=1)
        if pos == 0:
            naive_first = (naive < 10).float().mean().item()
        if pos == c - 1:
            naive_last = (naive < 10).float().mean().item()
    assert vals[0] == vals[1] == vals[2]
    assert naive_first > naive_last + 0.05  # the data do exercise ties at the cut-off


def test_sampled_ranking_bad_input_and_skips():
    fn = lambda u, items: items.float()  # noqa: E731
    users, targets = np.arange(4), np.array([5, -1, 7, 9])
    negs = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]])
    res = sampled_ranking(fn, users, targets, negs, ks=(1, 4), metrics=("hr", "auc"))
    assert res.n_users == 3 and res.n_skipped == 1
    assert res["hr@1"] == 1.0 and res["auc"] == 1.0
    with pytest.raises(ValueError, match="ks: K=5 exceeds"):
        sampled_ranking(fn, users, targets, negs, ks=5)
    with pytest.raises(ValueError, match="negatives: 1 case"):
        sampled_ranking(fn, users, np.array([5, 1, 7, 9]), negs, ks=1)
    with pytest.raises(ValueError, match="one row per test case"):
        sampled_ranking(fn, users[:3], targets, negs, ks=1)
    with pytest.raises(ValueError, match="scores: score_fn returned NaN"):
        sampled_ranking(lambda u, i: i.float() / 0 * 0, users, targets, negs, ks=1)
    with pytest.raises(ValueError, match="out of range"):
        sampled_ranking(fn, users, targets, negs, ks=1, n_items=8)
    with pytest.raises(ValueError, match="users: id 3 out of range for n_users=3"):
        sampled_ranking(fn, users, targets, negs, ks=1, n_users=3)
    with pytest.raises(ValueError, match="no test case has a target"):
        sampled_ranking(fn, users, -np.ones(4, int), negs, ks=1)
    with pytest.raises(ValueError, match="ties"):
        sampled_ranking(fn, users, targets, negs, ks=1, ties="random")


def test_sampled_ranking_with_a_full_scorer():
    rng = np.random.default_rng(0)
    u, v = torch.randn(30, 4), torch.randn(50, 4)
    targets = rng.integers(0, 10, 30)
    negs = rng.integers(10, 50, size=(30, 15))
    res = sampled_ranking(pair_scorer(dot_scorer(u, v)), np.arange(30), targets, negs, ks=5, metrics=("hr", "auc"))
    s = (u @ v.T).numpy()
    hr = np.mean([(s[i, negs[i]] >= s[i, targets[i]]).sum() < 5 for i in range(30)])
    auc = np.mean([(s[i, negs[i]] < s[i, targets[i]]).mean() for i in range(30)])
    assert res["hr@5"] == pytest.approx(hr) and res["auc"] == pytest.approx(auc)


# ------------------------------------------------------------------------------------------- CTR and report


def test_evaluate_ctr_matches_sklearn():
    rng = np.random.default_rng(0)
    x = torch.randn(1000, 3)
    w = torch.tensor([1.0, -2.0, 0.5])
    y = (torch.rand(1000) < torch.sigmoid(x @ w)).float()
    groups = torch.from_numpy(rng.integers(0, 20, 1000))
    loader = [(x[i : i + 128], y[i : i + 128], groups[i : i + 128]) for i in range(0, 1000, 128)]
    res = evaluate_ctr(lambda xb: xb @ w, loader, metrics=("auc", "logloss", "gauc"))
    logits = (x @ w).numpy()
    assert res["auc"] == pytest.approx(skm.roc_auc_score(y.numpy(), logits), abs=1e-12)
    assert res["logloss"] == pytest.approx(skm.log_loss(y.numpy(), 1 / (1 + np.exp(-logits.astype(np.float64)))), abs=1e-9)
    assert 0.5 < res["gauc"] < 1 and res.n_users == 1000
    with pytest.raises(ValueError, match="empty test set"):
        evaluate_ctr(lambda xb: xb @ w, [])
    with pytest.raises(ValueError, match="'gauc' needs"):
        evaluate_ctr(lambda xb: xb @ w, [(x, y)], metrics=("gauc",))


def test_leaderboard_runs_prints_and_saves(tmp_path):
    scores, test, train = random_data(0, tie_levels=None)
    s = torch.from_numpy(scores)
    board = Leaderboard("toy full ranking", lambda fn: full_ranking(fn, test, train, ks=(5, 10)))
    board.run("random", lambda: (lambda u: s[u]))
    board.run("popularity", lambda: (lambda u: torch.from_numpy(
        np.asarray(train.sum(0), dtype=np.float32)).expand(len(u), -1).clone()))
    text = str(board)
    assert "random" in text and "recall@5" in text and "ndcg@10" in text
    json_path, md_path = board.save(tmp_path / "board")
    loaded = Leaderboard.load(json_path)
    assert [r.model for r in loaded.rows] == ["random", "popularity"]
    assert loaded.rows[0].metrics == board.rows[0].metrics
    assert md_path.read_text().count("\n|") >= 3
    assert json.loads(json_path.read_text())["title"] == "toy full ranking"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_metric_names_cover_every_k_and_metric():
    scores, test, train = random_data(0)
    res = full_ranking(lambda u: torch.from_numpy(scores)[u], test, train, ks=(3, 1), metrics=("ndcg", "map"))
    assert list(res.metrics) == [f"{m}@{k}" for k, m in itertools.product((1, 3), ("ndcg", "map"))]


def test_sampled_ranking_with_the_data_layers_evaluation_negatives():
    from fastrec.data import Interactions, evaluation_negatives

    rng = np.random.default_rng(4)
    n_users, n_items = 80, 120
    train = Interactions.from_scipy(sp.random(n_users, n_items, density=0.1, format="csr", random_state=4))
    targets = np.array([rng.choice(np.setdiff1d(np.arange(n_items), train.row(u))) for u in range(n_users)])
    test = Interactions.from_scipy(sp.csr_matrix((np.ones(n_users), (np.arange(n_users), targets)),
                                                 shape=(n_users, n_items)))
    negs = evaluation_negatives([train, test], 30, seed=1).astype(np.int64)
    assert not any(np.isin(negs[u], np.append(train.row(u), targets[u])).any() for u in range(n_users))
    item_score = torch.from_numpy(rng.integers(0, 8, n_items).astype(np.float32))
    res = sampled_ranking(lambda u, i: item_score[i], np.arange(n_users), targets, negs, ks=5,
                          metrics=("hr", "ndcg"), n_items=n_items)
    want = [brute_sampled(float(item_score[t]), item_score[n].numpy(), 5, "pessimistic")
            for t, n in zip(targets, negs)]
    assert res["hr@5"] == pytest.approx(np.mean([w["hr"] for w in want]), abs=1e-12)
    assert res["ndcg@5"] == pytest.approx(np.mean([w["ndcg"] for w in want]), abs=1e-12)
