"""Negative samplers: exclusion, distributions (chi-square), reproducibility at 1 and 2 threads, edge cases."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import stats

from fastrec.data import Interactions, samplers
from fastrec.data.samplers import (
    NegativeSampler,
    _build_alias,
    evaluation_negatives,
    hard_negatives,
    popularity_negatives,
    uniform_negatives,
    union,
)

N_ITEMS = 60


@pytest.fixture(scope="module")
def inter() -> Interactions:
    """30 users over 60 items: random rows (user 27: all but 8 items, the most popular ones among them), a user with
    all items but one (28) and a user with every item (29)."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(28):
        row = rng.choice(N_ITEMS, size=rng.integers(1, 40) if u < 27 else 52, replace=False)
        users += [u] * row.size
        items += row.tolist()
    users += [28] * (N_ITEMS - 1)
    items += [i for i in range(N_ITEMS) if i != 17]
    users += [29] * N_ITEMS
    items += list(range(N_ITEMS))
    return Interactions.from_arrays(users, items, user_ids="identity", item_ids="identity", n_items=N_ITEMS)


def assert_no_positive(x: Interactions, users: np.ndarray, neg: np.ndarray) -> None:
    assert neg.dtype == np.int32 and neg.shape[0] == users.shape[0]
    assert neg.min() >= 0 and neg.max() < x.n_items
    dense = x.to_scipy().toarray() > 0
    assert not dense[users[:, None], neg].any()


@pytest.mark.parametrize("distribution", ["uniform", "popularity", "mixed"])
def test_never_a_positive(inter, distribution):
    sampler = NegativeSampler(inter, distribution=distribution, max_tries=2)
    users = np.repeat(np.arange(29), 50)
    neg = sampler.sample(users, 8, seed=3)
    assert_no_positive(inter, users, neg)
    assert (neg[users == 28] == 17).all()  # the only item left


def chi2_pvalue(samples: np.ndarray, probs: np.ndarray) -> float:
    counts = np.bincount(samples.ravel(), minlength=probs.size)
    assert counts[probs == 0].sum() == 0
    keep = probs > 0
    return stats.chisquare(counts[keep], probs[keep] / probs[keep].sum() * samples.size).pvalue


def test_uniform_distribution(inter):
    u = 5
    neg = uniform_negatives(inter, np.full(4000, u), 25, seed=11)
    probs = np.ones(N_ITEMS)
    probs[inter.row(u)] = 0
    assert chi2_pvalue(neg, probs) > 1e-3


@pytest.mark.parametrize("max_tries", [64, 1])  # 1: most draws take the exact fallback for a dense row
@pytest.mark.parametrize("user", [3, 27])
def test_popularity_distribution(inter, max_tries, user):
    alpha = 0.75
    sampler = NegativeSampler(inter, distribution="popularity", alpha=alpha, max_tries=max_tries)
    neg = sampler.sample(np.full(4000, user), 25, seed=5)
    probs = inter.item_popularity().astype(float) ** alpha
    probs[inter.row(user)] = 0
    assert chi2_pvalue(neg, probs) > 1e-3


def test_mixed_and_weights_distribution(inter):
    rng = np.random.default_rng(1)
    w = rng.random(N_ITEMS) ** 3
    w[:5] = 0.0  # never drawn by the weighted part
    user, f = 7, 0.3
    sampler = NegativeSampler(inter, distribution="mixed", item_weights=w, uniform_fraction=f)
    neg = sampler.sample(np.full(5000, user), 20, seed=9)
    uni = np.ones(N_ITEMS)
    uni[inter.row(user)] = 0
    pop = w.copy()
    pop[inter.row(user)] = 0
    probs = f * uni / uni.sum() + (1 - f) * pop / pop.sum()
    assert chi2_pvalue(neg, probs) > 1e-3


def test_alias_table_is_exact():
    w = np.array([0.0, 1.0, 2.0, 0.5, 0.0, 7.25, 3.0])
    prob, alias, cdf = _build_alias(w)
    n = w.size
    implied = prob / n
    np.add.at(implied, alias, (1 - prob) / n)
    np.testing.assert_allclose(implied, w / w.sum(), atol=1e-12)
    np.testing.assert_allclose(cdf, np.concatenate([[0], np.cumsum(w)]))


@pytest.mark.parametrize("distribution", ["uniform", "popularity", "mixed"])
def test_reproducible_across_threads_and_batches(inter, distribution, monkeypatch):
    monkeypatch.setattr(samplers, "PARALLEL_MIN_WORK", 0)  # small batches would otherwise run on one thread
    sampler = NegativeSampler(inter, distribution=distribution, max_tries=3)
    users = np.random.default_rng(2).integers(0, 29, 5000)  # > 4096: the grouped visiting order is used
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = sampler.sample(users, 4, seed=7)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = sampler.sample(users, 4, seed=7)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(one, two)
    first = sampler.sample(users[:1000], 4, seed=7)
    rest = sampler.sample(users[1000:], 4, seed=7, offset=1000 * 4)
    np.testing.assert_array_equal(np.vstack([first, rest]), one)
    assert not np.array_equal(sampler.sample(users, 4, seed=8), one)
    np.testing.assert_array_equal(sampler.sample(users, 4, seed=7, group=False), one)


def test_small_batches_restore_the_thread_count(inter):
    previous = numba.get_num_threads()
    NegativeSampler(inter).sample(np.arange(10), 4)  # below PARALLEL_MIN_WORK: runs on one thread
    assert numba.get_num_threads() == previous


def test_unsamplable_users_raise(inter):
    with pytest.raises(ValueError, match=r"user 29 .*60 positives of 60 items.*no item left"):
        uniform_negatives(inter, [0, 29], 3)
    with pytest.raises(ValueError, match=r"user 29 "):
        popularity_negatives(inter, [29], 3)
    w = np.zeros(N_ITEMS)
    w[inter.row(4)] = 1.0  # all of the weight on user 4's positives
    with pytest.raises(ValueError, match=r"user 4 "):
        NegativeSampler(inter, distribution="popularity", item_weights=w, max_tries=4).sample([4], 2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x: uniform_negatives(x, [0, 30], 2), r"users\[1\] = 30 is out of range \[0, 30\)"),
        (lambda x: uniform_negatives(x, [-1], 2), r"users\[0\] = -1 is out of range"),
        (lambda x: uniform_negatives(x, [0], 0), "n_neg must be an integer >= 1, got 0"),
        (lambda x: uniform_negatives(x, [0.5], 1), "users must be internal integer ids"),
        (lambda x: NegativeSampler(x, distribution="zipf"), "distribution must be"),
        (lambda x: NegativeSampler(x, distribution="mixed", uniform_fraction=1.5), "uniform_fraction must be in"),
        (lambda x: NegativeSampler(x, distribution="popularity", alpha=-1.0), "alpha must be finite and >= 0"),
        (lambda x: NegativeSampler(x, distribution="popularity", item_weights=np.ones(3)), "item_weights must have"),
        (lambda x: NegativeSampler(x, distribution="popularity", item_weights=-np.ones(N_ITEMS)),
         r"item_weights\[0\] = -1.0"),
        (lambda x: NegativeSampler(x, distribution="popularity", item_weights=np.zeros(N_ITEMS)), "sum to 0"),
        (lambda x: NegativeSampler(x).sample([0], 1, offset=-1), "offset must be >= 0"),
    ],
)
def test_bad_arguments(inter, call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(inter)


def test_hard_negatives_top_k(inter):
    rng = np.random.default_rng(3)
    users = np.array([0, 5, 28, 12])
    scores = rng.integers(0, 5, (4, N_ITEMS)).astype(np.float32)  # many ties: lower item id wins
    got = hard_negatives(scores[[0, 1, 3]], inter, users[[0, 1, 3]], 6)
    dense = inter.to_scipy().toarray() > 0
    for b, u in enumerate(users[[0, 1, 3]]):
        s = np.where(dense[u], -np.inf, scores[[0, 1, 3]][b].astype(float))
        ref = np.lexsort((np.arange(N_ITEMS), -s))[:6]
        assert got[b].tolist() == ref.tolist()
    one = hard_negatives(scores[2:3], inter, users[2:3], 1)
    assert one.tolist() == [[17]]
    with pytest.raises(ValueError, match=r"user 28 .*fewer than k=2"):
        hard_negatives(scores[2:3], inter, users[2:3], 2)
    with pytest.raises(ValueError, match=r"scores must have shape"):
        hard_negatives(scores[:, :10], inter, users, 2)
    bad = scores.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"scores\[1, 3\] = nan"):
        hard_negatives(bad, inter, users, 2)


def test_hard_negatives_softmax_sampling(inter):
    import torch

    user = 6
    base = np.random.default_rng(4).normal(size=N_ITEMS)
    rows = 6000
    scores = torch.tensor(np.tile(base, (rows, 1)))
    temperature = 0.5
    got = hard_negatives(scores, inter, np.full(rows, user), 1, temperature=temperature, seed=1)
    p = np.exp(base / temperature)
    p[inter.row(user)] = 0
    assert chi2_pvalue(got, p) > 1e-3
    two = hard_negatives(scores[:50], inter, np.full(50, user), 3, temperature=temperature, seed=1)
    assert all(len(set(r)) == 3 for r in two.tolist())
    again = hard_negatives(scores[:50], inter, np.full(50, user), 3, temperature=temperature, seed=1)
    np.testing.assert_array_equal(two, again)


def test_evaluation_negatives(inter):
    rng = np.random.default_rng(5)
    extra = Interactions.from_arrays([0, 1, 2], [59, 58, 57], user_ids=inter.user_ids, item_ids=inter.item_ids)
    users = np.arange(27)
    neg = evaluation_negatives([inter, extra], 15, users=users, seed=3)
    assert_no_positive(union([inter, extra]), users, neg)
    assert all(np.all(np.diff(r) > 0) for r in neg)  # distinct and sorted
    part = evaluation_negatives([inter, extra], 15, users=users[10:12], seed=3)
    np.testing.assert_array_equal(part, neg[10:12])  # depends on (seed, user) only
    with pytest.raises(ValueError, match=r"user 28 .*fewer than n_neg=2"):
        evaluation_negatives(inter, 2)
    one = evaluation_negatives(inter, 1, users=[28])
    assert one.tolist() == [[17]]
    # marginal uniformity: many identical users, each non-positive item picked with probability n / m
    same = Interactions.from_arrays(np.repeat(np.arange(3000), 20), np.tile(rng.choice(N_ITEMS, 20, replace=False),
                                    3000), user_ids="identity", item_ids="identity", n_items=N_ITEMS)
    picks = evaluation_negatives(same, 10, seed=0)
    probs = np.ones(N_ITEMS)
    probs[same.row(0)] = 0
    assert chi2_pvalue(picks, probs) > 1e-3
    with pytest.raises(ValueError, match="share one id space"):
        union([inter, Interactions.from_arrays([0], [0])])


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_long_rows_binary_search_path(distribution):
    """Rows longer than the linear-scan limit (128) take the binary search: same exclusion and distribution."""
    rng = np.random.default_rng(8)
    n_items = 1000
    rows = [rng.choice(n_items, size=d, replace=False) for d in (129, 300, 990)]
    users = np.concatenate([np.full(r.size, u) for u, r in enumerate(rows)])
    x = Interactions.from_arrays(users, np.concatenate(rows), user_ids="identity", item_ids="identity",
                                 n_items=n_items)
    sampler = NegativeSampler(x, distribution=distribution, max_tries=4)
    for u in range(3):
        neg = sampler.sample(np.full(6000, u), 5, seed=u)
        probs = np.ones(n_items) if distribution == "uniform" else x.item_popularity().astype(float) ** 0.75
        probs[x.row(u)] = 0
        assert chi2_pvalue(neg, probs) > 1e-3


def _py_draw(key: int, counter: int) -> int:
    """SplitMix64's output function on key + counter * golden, in plain Python integers (the reference)."""
    mask = (1 << 64) - 1
    z = (key + counter * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_uniform_matches_python_reference():
    """Exact values against a plain-Python re-derivation: negative j of row b is the floor(u * m)-th non-positive
    item, u from the draw of counter offset + b * n_neg + j; short rows (4-at-a-time scan) and long rows."""
    from fastrec.data._rng import seed_key

    rng = np.random.default_rng(9)
    n_items = 400
    rows = [rng.choice(n_items, size=d, replace=False) for d in (0, 5, 100, 128, 129, 350)]
    users = np.concatenate([np.full(r.size, u) for u, r in enumerate(rows)])
    x = Interactions.from_arrays(users, np.concatenate(rows), user_ids="identity", item_ids="identity",
                                 n_users=len(rows), n_items=n_items)
    batch = np.array([0, 1, 2, 3, 4, 5, 3, 2])
    n_neg, seed, offset = 6, 42, 1000
    got = uniform_negatives(x, batch, n_neg, seed=seed, offset=offset)
    key = int(seed_key(seed))
    for b, u in enumerate(batch):
        free = np.setdiff1d(np.arange(n_items), rows[u])
        for j in range(n_neg):
            unit = (_py_draw(key, offset + b * n_neg + j) >> 11) * 2.0**-53
            assert got[b, j] == free[int(unit * free.size)], (b, j)


def test_popularity_matches_python_reference():
    """Exact values against plain Python: alias draws along each negative's chain, positives rejected, after
    max_tries an inverse-CDF draw over the remaining items; short rows (4 first tries per pass) and long rows."""
    from fastrec.data._rng import seed_key

    rng = np.random.default_rng(10)
    n_items = 300
    rows = [rng.choice(n_items, size=d, replace=False) for d in (3, 60, 128, 200, 295)]
    users = np.concatenate([np.full(r.size, u) for u, r in enumerate(rows)])
    x = Interactions.from_arrays(users, np.concatenate(rows), user_ids="identity", item_ids="identity",
                                 n_items=n_items)
    max_tries = 2
    sampler = NegativeSampler(x, distribution="popularity", alpha=0.75, max_tries=max_tries)
    batch = np.array([0, 1, 2, 3, 4, 4, 1])
    n_neg, seed = 9, 5
    got = sampler.sample(batch, n_neg, seed=seed)
    key = int(seed_key(seed))
    weights = x.item_popularity().astype(float) ** 0.75
    fallbacks = 0
    for b, u in enumerate(batch):
        pos = set(rows[u].tolist())
        for j in range(n_neg):
            z = _py_draw(key, b * n_neg + j)
            want = None
            for _ in range(max_tries):
                c = ((z >> 32) * n_items) >> 32
                cand = c if (z & 0xFFFFFFFF) * 2.0**-32 < sampler.prob[c] else int(sampler.alias[c])
                if cand not in pos:
                    want = cand
                    break
                z = _py_draw(z, 1)  # the chain's next number: mix(z + golden)
            if want is None:
                fallbacks += 1
                unit = (_py_draw(z, 1) >> 11) * 2.0**-53
                free = np.array([i for i in range(n_items) if i not in pos and weights[i] > 0])
                cum = np.cumsum(weights[free])
                want = int(free[np.searchsorted(cum, unit * cum[-1], side="right")])
            assert got[b, j] == want, (b, j)
    assert fallbacks > 0  # the dense rows took the exact path at least once
