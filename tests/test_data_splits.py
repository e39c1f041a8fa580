"""Splits: partitions of the entries, the protocol each one promises, determinism, short users."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from fastrec.data import Interactions, load_user_item_lines
from fastrec.data.splits import kfold, leave_one_out, random_holdout, strong_generalization, temporal_split

DATA = Path(__file__).parents[1] / ".." / "shared" / "data"


def entries(x: Interactions) -> set[tuple[int, int]]:
    r, c, _ = x.to_coo()
    return set(zip(r.tolist(), c.tolist()))


def assert_partition(x: Interactions, *parts: Interactions | None) -> None:
    sets = [entries(p) for p in parts if p is not None]
    assert sum(map(len, sets)) == len(set().union(*sets))
    assert set().union(*sets) == entries(x)
    for p in parts:
        if p is not None:
            assert p.shape == x.shape and p.user_ids is x.user_ids and p.item_ids is x.item_ids


@pytest.fixture(scope="module")
def timed() -> Interactions:
    rng = np.random.default_rng(0)
    n = 4000
    pairs = rng.choice(200 * 150, n, replace=False)
    return Interactions.from_arrays(pairs // 150 + 1000, pairs % 150, rng.random(n), rng.integers(0, 50, n))


def test_leave_one_out_by_time(timed):
    s = leave_one_out(timed)
    assert_partition(timed, s.train, s.valid, s.test)
    assert s.dropped.size == 0
    for u in range(timed.n_users):
        lo, hi = timed.indptr[u], timed.indptr[u + 1]
        ts, it = timed.timestamps[lo:hi], timed.indices[lo:hi]
        order = np.lexsort((it, ts))  # time, then item id
        assert s.test.row(u).tolist() == [it[order[-1]]]
        assert s.valid.row(u).tolist() == [it[order[-2]]]
        assert s.train.nnz and s.train.row(u).size == hi - lo - 2
    # values and timestamps stay aligned with their entries
    r, c, v = s.test.to_coo()
    dense = timed.to_scipy().toarray()
    np.testing.assert_array_equal(v, dense[r, c])


def test_leave_one_out_beauty_matches_file_order():
    path = DATA / "beauty" / "Beauty.txt"
    if not path.exists():
        pytest.skip(f"{path} not present")
    x = load_user_item_lines(path, positions_as_timestamps=True)
    s = leave_one_out(x)
    lines = path.read_text().splitlines()
    for line in lines[:200]:
        ids = [int(t) for t in line.split()]
        u = int(x.user_index([ids[0]])[0])
        assert x.item_ids[s.test.row(u)].tolist() == [ids[-1]]
        assert x.item_ids[s.valid.row(u)].tolist() == [ids[-2]]
        assert sorted(x.item_ids[s.train.row(u)].tolist()) == sorted(ids[1:-2])
    assert s.test.nnz == s.valid.nnz == x.n_users and s.train.nnz == x.nnz - 2 * x.n_users


def test_short_users_policies():
    x = Interactions.from_arrays(["a", "a", "a", "b", "b", "c"], [1, 2, 3, 1, 2, 3], timestamps=[1, 2, 3, 1, 2, 1])
    with pytest.raises(ValueError, match=r"2 users would have no training data .*'b', 'c'"):
        leave_one_out(x)
    with pytest.warns(UserWarning, match=r"dropped 2 users with 3 entries"):
        s = leave_one_out(x, short_users="drop")
    assert s.dropped.tolist() == [1, 2] and s.train.nnz == 1 and s.test.nnz == 1 and s.valid.nnz == 1
    s = leave_one_out(x, short_users="train")
    assert s.train.row(1).size == 2 and s.test.row(1).size == 0
    with pytest.warns(UserWarning, match="dropped 1 users with 1 entries .*'c'"):
        s = leave_one_out(x, n_valid=0, short_users="drop")  # b has 2 entries: fine now; c has 1
    assert s.valid is None and s.dropped.tolist() == [2]
    with pytest.raises(ValueError, match="needs timestamps"):
        leave_one_out(Interactions.from_arrays([0], [0]))
    with pytest.raises(ValueError, match="by must be 'time' or 'random'"):
        leave_one_out(x, by="clock")
    with pytest.raises(ValueError, match="short_users must be"):
        leave_one_out(x, short_users="ignore")


def test_leave_one_out_random_is_seeded(timed):
    a = leave_one_out(timed, by="random", seed=1)
    b = leave_one_out(timed, by="random", seed=1)
    c = leave_one_out(timed, by="random", seed=2)
    assert a.test.equals(b.test) and not a.test.equals(c.test)
    assert_partition(timed, a.train, a.valid, a.test)


def test_temporal_split(timed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few users have entries only after the cut
        s = temporal_split(timed, test_fraction=0.2, valid_fraction=0.1)
    cut = s.test.timestamps.min()
    assert s.train.timestamps.max() < s.valid.timestamps.min() <= s.valid.timestamps.max() < cut
    # with the dropped users' later entries counted, about 20% (ties at the cut go to test) are at or after the cut
    assert int((timed.timestamps >= cut).sum()) >= 0.2 * timed.nnz > int((timed.timestamps > cut).sum())
    dropped_later = timed.select(np.isin(timed.rowids(), s.dropped) & (timed.timestamps >= cut)).nnz
    assert s.test.nnz + dropped_later == int((timed.timestamps >= cut).sum())
    for p in (s.train, s.valid, s.test):
        assert p.shape == timed.shape
    users_later = np.flatnonzero((s.test.user_degrees() + s.valid.user_degrees()) > 0)
    assert (s.train.user_degrees()[users_later] > 0).all()
    # cold users: a user whose only entry is after the cut
    x = Interactions.from_arrays([0, 0, 1], [0, 1, 2], timestamps=[1, 5, 9])
    with pytest.warns(UserWarning, match="dropped the later entries of 1 users"):
        d = temporal_split(x, cutoff=5)
    assert d.dropped.tolist() == [1] and d.test.nnz == 1 and d.train.nnz == 1
    assert temporal_split(x, cutoff=5, cold_users="keep").test.nnz == 2
    with pytest.raises(ValueError, match="1 users have entries only after the cut"):
        temporal_split(x, cutoff=5, cold_users="raise")
    with pytest.raises(ValueError, match="exactly one of cutoff and test_fraction"):
        temporal_split(x)


def test_random_holdout(timed):
    s = random_holdout(timed, test_ratio=0.2, valid_ratio=0.1, seed=3)
    assert_partition(timed, s.train, s.valid, s.test)
    deg = timed.user_degrees()
    np.testing.assert_array_equal(s.test.user_degrees(), np.floor(deg * 0.2 + 0.5))
    np.testing.assert_array_equal(s.valid.user_degrees(), np.floor(deg * 0.1 + 0.5))
    assert random_holdout(timed, seed=3).test.equals(random_holdout(timed, seed=3).test)
    assert not random_holdout(timed, seed=3).test.equals(random_holdout(timed, seed=4).test)
    one = Interactions.from_arrays([0, 1, 1], [0, 0, 1])
    with pytest.raises(ValueError, match="1 users would have no training data"):
        random_holdout(one, test_ratio=0.5)
    with pytest.raises(ValueError, match="need 0 < test_ratio < 1"):
        random_holdout(one, test_ratio=1.0)


def test_strong_generalization(timed):
    s = strong_generalization(timed, n_valid_users=20, n_test_users=0.1, fold_in=0.8, seed=0)
    assert s.test_users.size == 20 and s.valid_users.size == 20 and s.train_users.size == timed.n_users - 40
    assert not set(s.test_users) & set(s.valid_users) and not set(s.train_users) & set(s.test_users)
    assert_partition(timed, s.train, s.valid_fold_in, s.valid_test, s.test_fold_in, s.test_test)
    assert set(np.flatnonzero(s.train.user_degrees())) <= set(s.train_users)
    assert set(np.flatnonzero(s.test_test.user_degrees())) <= set(s.test_users)
    deg = timed.user_degrees()[s.test_users]
    held = s.test_test.user_degrees()[s.test_users]
    np.testing.assert_array_equal(held, np.where(deg >= 5, np.maximum(1, np.floor(deg * 0.2 + 0.5)), 0))
    again = strong_generalization(timed, n_valid_users=20, n_test_users=0.1, fold_in=0.8, seed=0)
    assert again.test_test.equals(s.test_test)
    with pytest.raises(ValueError, match="leaves no training users"):
        strong_generalization(timed, n_valid_users=100, n_test_users=100)


def test_kfold():
    n, k = 103, 5
    folds = list(kfold(n, k, seed=0))
    tests = [t for _, t in folds]
    assert [len(t) for t in tests] == [21, 21, 21, 20, 20]
    np.testing.assert_array_equal(np.concatenate(tests), np.random.RandomState(0).permutation(n))
    for train, test in folds:
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(n))
    plain = [t.tolist() for _, t in kfold(10, 3, shuffle=False)]
    assert plain == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, n_rows=3\]"):
        list(kfold(3, 5))
