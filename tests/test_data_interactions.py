"""Interactions: CSR construction against a dict-based reference, id maps, conversions, persistence, bad input."""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fastrec.data import Interactions


def reference_csr(users, items, values, timestamps, policy):
    """{(u, i): (value, timestamp)} merged by policy with plain Python, input order as the tie-breaker."""
    groups = defaultdict(list)
    for k, (u, i) in enumerate(zip(users.tolist(), items.tolist())):
        groups[(u, i)].append((values[k], timestamps[k] if timestamps is not None else 0, k))
    out = {}
    for key, g in groups.items():
        if policy == "sum":
            out[key] = (np.float32(sum(np.float64(v) for v, _, _ in g)), max(t for _, t, _ in g))
        elif policy == "max":
            out[key] = (max(v for v, _, _ in g), max(t for _, t, _ in g))
        elif policy == "first":
            v, t, _ = min(g, key=lambda e: (e[1], e[2]) if timestamps is not None else (0, e[2]))
            out[key] = (v, t)
        elif policy == "last":
            v, t, _ = max(g, key=lambda e: (e[1], e[2]) if timestamps is not None else (0, e[2]))
            out[key] = (v, t)
    return out


def as_dict(x: Interactions):
    rows, cols, vals = x.to_coo()
    ts = x.timestamps if x.timestamps is not None else np.zeros(x.nnz, np.int64)
    return {(int(x.user_ids[r]), int(x.item_ids[c])): (v, t) for r, c, v, t in zip(rows, cols, vals, ts)}


@pytest.mark.parametrize("policy", ["sum", "max", "first", "last"])
@pytest.mark.parametrize("with_ts", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_construction_matches_reference(policy, with_ts, seed):
    rng = np.random.default_rng(seed)
    n = 3000
    users = rng.integers(0, 60, n) * 7 + 3         # sparse external ids
    items = rng.integers(0, 40, n)                 # many duplicates, long rows (> insertion-sort size)
    values = rng.integers(1, 6, n).astype(np.float32)
    ts = rng.integers(0, 20, n) if with_ts else None  # ties in time exercise the input-order tie-break
    x = Interactions.from_arrays(users, items, values, ts, duplicates=policy)
    ref = reference_csr(users, items, values, ts, policy)
    got = as_dict(x)
    assert got.keys() == ref.keys()
    for key, (v, t) in ref.items():
        assert got[key][0] == pytest.approx(v, rel=1e-6), key
        assert got[key][1] == t, key
    # invariants
    assert x.indptr.dtype == np.int64 and x.indices.dtype == np.int32 and x.values.dtype == np.float32
    for u in range(x.n_users):
        assert np.all(np.diff(x.row(u)) > 0)
    assert np.array_equal(x.user_ids, np.unique(users)) and np.array_equal(x.item_ids, np.unique(items))
    assert (x.timestamps is not None) == with_ts


def test_no_duplicates_keeps_every_entry_in_order():
    rng = np.random.default_rng(5)
    pairs = rng.choice(500 * 300, size=20000, replace=False)
    users, items = pairs // 300, pairs % 300
    values = rng.random(20000).astype(np.float32)
    ts = rng.integers(0, 10**12, 20000)
    x = Interactions.from_arrays(users, items, values, ts)
    dense = np.zeros((500, 300), np.float32)
    dense[users, items] = values
    present = np.unique(users)
    np.testing.assert_array_equal(x.to_scipy().toarray(), dense[present][:, np.unique(items)])
    tdense = np.zeros((500, 300), np.int64)
    tdense[users, items] = ts
    r, c, _ = x.to_coo()
    np.testing.assert_array_equal(x.timestamps, tdense[x.user_ids[r], x.item_ids[c]])


def test_duplicates_error_names_the_pair():
    with pytest.raises(ValueError, match=r"1 duplicate .*user 'b' item 7.*duplicates="):
        Interactions.from_arrays(["a", "b", "b"], [7, 7, 7])
    with pytest.raises(ValueError, match="duplicates must be one of"):
        Interactions.from_arrays([0], [0], duplicates="mean")


def test_id_kinds():
    x = Interactions.from_arrays(np.array([10**15, 5, 10**15]), [1.0, 2.0, 3.0])  # huge ints: sort path
    assert x.user_ids.tolist() == [5, 10**15] and x.item_ids.tolist() == [1, 2, 3]
    assert x.row(1).tolist() == [0, 2]
    mixed = np.array([("a", 1), 3, "z", 3], dtype=object)
    y = Interactions.from_arrays(mixed, [0, 1, 2, 3])
    assert y.user_ids.tolist() == [("a", 1), 3, "z"]  # unsortable: first appearance
    assert y.row(1).tolist() == [1, 3]
    assert y.user_index([3, "z", "nope"]).tolist() == [1, 2, -1]


def test_identity_and_shared_id_space():
    train = Interactions.from_arrays([0, 0, 2], [1, 4, 2], user_ids="identity", item_ids="identity", n_items=6)
    assert train.shape == (3, 6) and train.row(1).size == 0
    test = Interactions.from_arrays([2, 1], [5, 0], user_ids=train.user_ids, item_ids=train.item_ids)
    assert test.shape == train.shape and test.row(2).tolist() == [5]
    with pytest.raises(ValueError, match=r"items\[0\] = 9 is not in the given item_ids"):
        Interactions.from_arrays([0], [9], user_ids=train.user_ids, item_ids=train.item_ids)
    dropped = Interactions.from_arrays([0, 1], [9, 3], user_ids=train.user_ids, item_ids=train.item_ids,
                                       unknown="drop")
    assert dropped.nnz == 1 and dropped.row(1).tolist() == [3]
    with pytest.raises(ValueError, match=r"items\[1\] = 6 is out of range for n_items=6"):
        Interactions.from_arrays([0, 0], [1, 6], user_ids="identity", item_ids="identity", n_items=6)
    s = Interactions.from_arrays(["u", "v"], ["x", "y"])
    t = Interactions.from_arrays(["v"], ["x"], user_ids=s.user_ids, item_ids=s.item_ids)
    assert t.to_scipy().toarray().tolist() == [[0, 0], [1, 0]]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(users=[0, -1], items=[0, 1]), ValueError, r"users must be non-negative ids: users\[1\] = -1"),
        (dict(users=[0, 1], items=[0.5, 1]), ValueError, r"items must hold integer ids: items\[0\] = 0.5"),
        (dict(users=[0, 1], items=[0, np.nan]), ValueError, r"items must be finite: items\[1\] = nan"),
        (dict(users=[0, 1], items=[0, 1], values=[1.0, np.inf]), ValueError, r"values must be finite: values\[1\]"),
        (dict(users=[0, 1], items=[0, 1, 2]), ValueError, "same length, got 2 and 3"),
        (dict(users=[0, 1], items=[0, 1], values=[1.0]), ValueError, "values must have the length"),
        (dict(users=[0, 1], items=[0, 1], timestamps=[1.5, 2]), ValueError, r"timestamps must be integers"),
        (dict(users=[], items=[]), ValueError, "empty input"),
        (dict(users=[[0]], items=[[0]]), ValueError, "users must be 1-dimensional"),
        (dict(users=[True], items=[0]), TypeError, "users must hold integer or string ids"),
        (dict(users=[0], items=[0], values=[1e39]), ValueError, r"values \(as float32\) must be finite"),
    ],
)
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Interactions.from_arrays(**kwargs)


def test_constructor_checks_invariants():
    with pytest.raises(ValueError, match="row 0 is not strictly increasing"):
        Interactions(np.array([0, 2]), np.array([3, 1]), n_items=4)
    with pytest.raises(ValueError, match="row 0 is not strictly increasing"):
        Interactions(np.array([0, 1]), np.array([4]), n_items=4)
    with pytest.raises(ValueError, match="indptr must start at 0 and end at len"):
        Interactions(np.array([0, 3]), np.array([1]), n_items=4)


def test_conversions_and_popularity():
    rng = np.random.default_rng(2)
    m = sp.random(40, 30, density=0.2, format="csr", random_state=3, dtype=np.float64)
    x = Interactions.from_scipy(m)
    np.testing.assert_allclose(x.to_scipy().toarray(), m.toarray(), rtol=1e-6)
    t = x.to_torch()
    assert t.layout == torch.sparse_csr
    np.testing.assert_allclose(t.to_dense().numpy(), m.toarray().astype(np.float32))
    np.testing.assert_array_equal(x.item_popularity(), (m.toarray() != 0).sum(0))
    np.testing.assert_allclose(x.item_popularity(weighted=True), m.toarray().sum(0), rtol=1e-5)
    np.testing.assert_array_equal(x.user_degrees(), (m.toarray() != 0).sum(1))
    coo = sp.coo_matrix(([1.0, 2.0, 5.0], ([0, 0, 1], [1, 1, 0])), shape=(2, 3))
    assert Interactions.from_scipy(coo).to_scipy().toarray().tolist() == [[0, 3, 0], [5, 0, 0]]
    assert Interactions.from_scipy(coo, duplicates="max").to_scipy().toarray().tolist() == [[0, 2, 0], [5, 0, 0]]
    with pytest.raises(TypeError, match="scipy sparse"):
        Interactions.from_scipy(np.eye(3))
    del rng


def test_from_dataframe():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"u": ["a", "b", "a"], "i": [3, 3, 5], "r": [4.0, 2.0, 1.0], "t": [9, 8, 7]})
    x = Interactions.from_dataframe(df, "u", "i", "r", "t")
    assert x.to_scipy().toarray().tolist() == [[4, 1], [2, 0]]
    assert x.timestamps.tolist() == [9, 7, 8]
    with pytest.raises(KeyError, match=r"\['rating'\] not in the data frame"):
        Interactions.from_dataframe(df, "u", "i", "rating")


def test_kcore_matches_brute_force():
    rng = np.random.default_rng(4)
    users = rng.integers(0, 80, 900)
    items = (rng.zipf(1.6, 900) - 1) % 120
    x = Interactions.from_arrays(users, items, duplicates="first")
    core = x.kcore(min_user=5, min_item=4)
    pairs = {(int(x.user_ids[u]), int(x.item_ids[i])) for u, i, _ in zip(*x.to_coo())}
    while True:  # brute force on a set of pairs
        ud, idg = defaultdict(int), defaultdict(int)
        for u, i in pairs:
            ud[u] += 1
            idg[i] += 1
        keep = {(u, i) for u, i in pairs if ud[u] >= 5 and idg[i] >= 4}
        if keep == pairs:
            break
        pairs = keep
    got = {(int(core.user_ids[u]), int(core.item_ids[i])) for u, i, _ in zip(*core.to_coo())}
    assert got == pairs and len(pairs) > 0
    assert core.user_degrees().min() >= 5 and core.item_popularity().min() >= 4
    assert core.n_users == len({u for u, _ in pairs}) and core.n_items == len({i for _, i in pairs})


def test_binarize_compact_select():
    x = Interactions.from_arrays([0, 0, 1, 3], [0, 2, 2, 1], values=[5.0, 2.0, 4.0, 1.0], user_ids="identity")
    b = x.binarize(4.0)
    assert b.to_scipy().toarray().tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]
    c = b.compact()
    assert c.user_ids.tolist() == [0, 1] and c.item_ids.tolist() == [0, 2]
    assert c.to_scipy().toarray().tolist() == [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match="mask must have shape"):
        x.select(np.ones(3, bool))


def test_sequences():
    x = Interactions.from_arrays([0, 0, 0, 1, 1], [5, 3, 9, 2, 4], timestamps=[30, 10, 20, 2, 1])
    offsets, items = x.sequences()
    assert offsets.tolist() == [0, 3, 5]
    assert x.item_ids[items].tolist() == [3, 9, 5, 4, 2]
    p = x.padded_sequences(2, pad=-1)
    assert x.item_ids[p[0]].tolist() == [9, 5] and p[1].tolist() == [x.item_index([4])[0], x.item_index([2])[0]]
    p3 = x.padded_sequences(4, pad=-1, side="right")
    assert p3[1, 2:].tolist() == [-1, -1]
    with pytest.raises(ValueError, match="needs timestamps"):
        Interactions.from_arrays([0], [0]).sequences()


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    users = np.array([f"user{k}" for k in rng.integers(0, 50, 400)])
    items = rng.integers(0, 10**12, 400)
    x = Interactions.from_arrays(users, items, rng.random(400), rng.integers(0, 10**12, 400), duplicates="last")
    path = tmp_path / "x.npz"
    x.save(path)
    y = Interactions.load(path)
    assert x.equals(y) and y.user_ids.dtype.kind == "U" and y.item_ids.dtype == np.int64
    z = Interactions.from_arrays(np.array([("a", 1), "b"], dtype=object), [0, 1])
    with pytest.raises(TypeError, match="only int or str external ids can be saved"):
        z.save(tmp_path / "z.npz")
    obj = Interactions.from_arrays(np.array(["p", "q"], dtype=object), [0, 1])
    obj.save(tmp_path / "obj")  # exact path, no suffix added
    assert Interactions.load(tmp_path / "obj").equals(obj)


def test_failed_save_leaves_file_intact(tmp_path, monkeypatch):
    x = Interactions.from_arrays([0, 1], [1, 0])
    path = tmp_path / "x.npz"
    x.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        Interactions.from_arrays([0], [5]).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.npz"]  # no temporary file left behind
    monkeypatch.undo()
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a fastrec Interactions file"):
        Interactions.load(tmp_path / "other.npz")
