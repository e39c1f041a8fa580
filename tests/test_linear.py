"""fastrec.linear (EASE, ItemKNN) and the kernels under it (fastrec.ops.linear) against the plain closed forms in
fastrec.ops.reference: Gram matrices, the dense EASE solve, fused top-k serving, pruning, save/load, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fastrec import ops
from fastrec.linear import EASE
from fastrec.linear._base import csr_tensors
from fastrec.linear.refit import refit_columns
from fastrec.ops import reference

TOL = {torch.float64: dict(rtol=1e-9, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4)}


def random_csr(users: int, items: int, density: float, seed: int, weighted: bool = False, empty_rows=(),
               empty_cols=()) -> sp.csr_matrix:
    """A random interaction matrix with some users and items left without any entry."""
    rng = np.random.default_rng(seed)
    m = (rng.random((users, items)) < density).astype(np.float32)
    if weighted:
        m *= rng.integers(1, 5, size=m.shape).astype(np.float32)
    m[list(empty_rows)] = 0
    m[:, list(empty_cols)] = 0
    return sp.csr_matrix(m)


def triple(m: sp.csr_matrix, force_values: bool = False):
    indptr, indices, values = csr_tensors(m)
    if force_values and values is None:
        values = torch.ones(indices.numel(), dtype=torch.float32)
    return indptr, indices, values


CASES = [  # (users, items, density, weighted)
    (50, 30, 0.2, False), (37, 64, 0.1, True), (200, 150, 0.05, False), (1, 5, 0.9, False), (10, 1, 0.5, True),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES)
def test_gram_dense_matches_reference(case, dtype):
    users, items, density, weighted = case
    m = random_csr(users, items, density, seed=users + items, weighted=weighted, empty_rows=[0], empty_cols=[0])
    indptr, indices, values = triple(m)
    g = ops.gram_dense(indptr, indices, values, items, dtype)
    expect = torch.from_numpy((m.T @ m).toarray()).to(dtype)
    torch.testing.assert_close(g, expect, rtol=0, atol=0)  # small integer sums: exact
    torch.testing.assert_close(g, reference.gram_dense(indptr, indices, values, items, dtype), rtol=0, atol=0)
    assert torch.equal(g, g.T)


def test_gram_dense_empty_and_unseen_items():
    m = sp.csr_matrix((3, 4), dtype=np.float32)
    g = ops.gram_dense(*triple(m), 4)
    assert torch.equal(g, torch.zeros(4, 4))
    assert ops.gram_dense(*triple(sp.csr_matrix((2, 0), dtype=np.float32)), 0).shape == (0, 0)


@pytest.mark.parametrize("threshold,top_m", [(0.0, 0), (2.0, 0), (0.0, 3), (1.5, 2), (0.0, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gram_sparse_matches_reference(threshold, top_m, dtype):
    m = random_csr(80, 40, 0.15, seed=3, weighted=True, empty_cols=[5])
    args = (*triple(m), 40)
    got = ops.gram_sparse(*args, threshold=threshold, top_m=top_m, dtype=dtype)
    expect = reference.gram_sparse(*args, threshold, top_m, dtype)
    for a, b in zip(got, expect):
        assert torch.equal(a, b)
    # without pruning it is exactly X^T X
    if threshold == 0 and top_m == 0:
        full = sp.csr_matrix((got[2].numpy(), got[1].numpy(), got[0].numpy()), shape=(40, 40)).toarray()
        np.testing.assert_array_equal(full, (m.T @ m).toarray())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES[:3])
def test_ease_dense_matches_closed_form(case, dtype):
    users, items, density, weighted = case
    m = random_csr(users, items, density, seed=7, weighted=weighted, empty_cols=[1])
    model = EASE(l2=5.0, dtype=dtype, solver="dense").fit(m)
    expect = reference.ease_closed_form(torch.from_numpy(m.toarray()).double(), 5.0)
    torch.testing.assert_close(model.weights.double(), expect, **TOL[dtype])
    assert model.weights.dtype == dtype
    assert torch.count_nonzero(torch.diagonal(model.weights)) == 0
    assert model.solver_used == "dense"
    # an item nobody saw has no weight to or from the others
    assert torch.count_nonzero(model.weights[1]) == 0 and torch.count_nonzero(model.weights[:, 1]) == 0


def test_ease_dense_op_in_place_and_not_positive_definite():
    g = torch.randn(30, 30, dtype=torch.float64)
    g = g @ g.T
    out = ops.ease_dense_(g, 2.0)
    assert out.data_ptr() == g.data_ptr()
    with pytest.raises(ValueError, match="not positive definite"):
        ops.ease_dense_(-torch.eye(5), 0.5)
    with pytest.raises(ValueError, match="l2 must be finite and > 0"):
        ops.ease_dense_(torch.eye(3), 0.0)


@pytest.mark.parametrize("k", [0, 1, 7, 30])
@pytest.mark.parametrize("exclude_seen", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_csr_topk_matches_reference(k, exclude_seen, dtype):
    n = 30
    w = torch.randn(n, n, dtype=dtype)
    w[w.abs() < 1.0] = 0  # sparse-ish, with exact zeros (ties at 0 go to the lower id)
    m = random_csr(25, n, 0.2, seed=11, weighted=True, empty_rows=[3])
    m = m.toarray()
    m[4] = 1  # a user who saw everything: all padding when excluding
    m = sp.csr_matrix(m)
    x = triple(m)
    expect = reference.csr_topk_dense(w, *x, k, exclude_seen)
    got = ops.csr_topk_dense(w, *x, k, exclude_seen)
    torch.testing.assert_close(got[0], expect[0], **TOL[dtype])
    assert torch.equal(got[1], expect[1])
    ws = sp.csr_matrix(w.numpy())
    got_s = ops.csr_topk_sparse(*csr_tensors(ws)[:2], torch.from_numpy(ws.data), *x, k, exclude_seen)
    torch.testing.assert_close(got_s[0], expect[0], **TOL[dtype])
    assert torch.equal(got_s[1], expect[1])
    if exclude_seen and k:
        assert (got[1][4] == -1).all() and torch.isneginf(got[0][4]).all()


def test_recommend_and_score_agree():
    m = random_csr(60, 40, 0.1, seed=5)
    model = EASE(l2=3.0, dtype=torch.float64).fit(m)
    scores = model.score()
    scores[torch.from_numpy(m.toarray()) > 0] = -torch.inf
    top = torch.sort(scores, dim=1, descending=True, stable=True)
    s, i = model.recommend(k=10, batch_size=7)
    assert torch.equal(i, top.indices[:, :10])
    torch.testing.assert_close(s, top.values[:, :10], **TOL[torch.float64])
    # histories of new users: a list of item lists equals the same rows given as a matrix
    s2, i2 = model.recommend(histories=[m[2].indices.tolist(), m[9].indices.tolist()], k=10)
    assert torch.equal(i2, i[[2, 9]])
    s3, i3 = model.recommend([9, 2], k=10)
    assert torch.equal(i3, i[[9, 2]])


@pytest.mark.parametrize("per", ["target", "source"])
def test_prune_without_refit_keeps_top_weights_per_item(per):
    m = random_csr(120, 50, 0.1, seed=9)
    model = EASE(l2=2.0, dtype=torch.float64).fit(m)
    dense = model.weights.clone()
    exact_ids = model.recommend(k=5)[1]
    model.prune(top_m=50, per=per, refit=False)  # every weight kept: same lists from the sparse path
    assert torch.equal(model.recommend(k=5)[1], exact_ids)
    model.prune(top_m=4, per=per, refit=False)
    w = model.weights.toarray()
    if per == "source":  # the budget is per row of B (per history item): compare the transposes
        w, dense = w.T, dense.T
    assert ((w != 0).sum(axis=0) <= 4).all()
    for j in range(50):
        kept = np.flatnonzero(w[:, j])
        col = dense[:, j].abs().numpy()
        assert col[kept].min() >= np.sort(col)[-4] - 1e-15
        np.testing.assert_array_equal(w[kept, j], dense[kept, j].numpy())


def constrained_ease(g: np.ndarray, support: np.ndarray, l2: float) -> np.ndarray:
    """EASE with B restricted to a boolean support, column by column with numpy: the reference for the refit."""
    b = np.zeros_like(g)
    for j in range(g.shape[0]):
        s = np.flatnonzero(support[:, j])
        if s.size:
            b[s, j] = np.linalg.solve(g[np.ix_(s, s)] + l2 * np.eye(s.size), g[s, j])
    return b


def test_refit_columns_matches_constrained_closed_form():
    m = random_csr(200, 40, 0.15, seed=4, weighted=True, empty_cols=[3])
    g = (m.T @ m).toarray().astype(np.float64)
    full = ~np.eye(40, dtype=bool)
    exact = reference.ease_closed_form(torch.from_numpy(m.toarray()).double(), 3.0).numpy()
    refit = refit_columns(sp.csr_matrix(g), sp.csc_matrix(full.astype(float)), 3.0).toarray()
    np.testing.assert_allclose(refit, exact, atol=1e-12)  # full support: exactly EASE
    rng = np.random.default_rng(0)
    support = (rng.random((40, 40)) < 0.3) & full
    support[:, 7] = False  # a column with no support stays empty
    got = refit_columns(sp.csr_matrix(g), sp.csc_matrix(support.astype(float)), 3.0)
    assert (got.toarray()[~support] == 0).all() and got.nnz == support.sum()
    np.testing.assert_allclose(got.toarray(), constrained_ease(g, support, 3.0), atol=1e-12)
    with pytest.raises(ValueError, match="column 0 contains its own item"):
        refit_columns(sp.csr_matrix(g), sp.csc_matrix(np.ones((40, 40))), 3.0)
    with pytest.raises(ValueError, match="l2"):
        refit_columns(sp.csr_matrix(g), sp.csc_matrix(support.astype(float)), 0.0)
    with pytest.raises(ValueError, match="not positive definite"):
        refit_columns(sp.csr_matrix(-g), sp.csc_matrix(support.astype(float)), 3.0)


@pytest.mark.parametrize("per", ["target", "source"])
def test_prune_with_refit_solves_ease_on_the_kept_pattern(per):
    m = random_csr(150, 45, 0.12, seed=5)
    model = EASE(l2=2.0, dtype=torch.float64).fit(m)
    dense = model.weights.clone()
    model.prune(top_m=45, per=per)  # every weight kept: the refit is the exact solution
    np.testing.assert_allclose(model.weights.toarray(), dense.numpy(), atol=1e-10)
    model.weights = dense.clone()
    model.prune(top_m=6, per=per, max_support=9)
    w = model.weights.toarray()
    support = w != 0
    g = (m.T @ m).toarray().astype(np.float64)
    np.testing.assert_allclose(w, constrained_ease(g, support, 2.0), atol=1e-10)
    if per == "source":
        assert support.sum(axis=1).max() <= 6 and support.sum(axis=0).max() <= 9
        for i in np.flatnonzero(support.any(axis=1)):  # each row's pattern: among its 6 largest weights by value
            d = dense[i].numpy()
            assert d[support[i]].min() >= np.sort(d)[-6] - 1e-15
    else:
        assert support.sum(axis=0).max() <= 6
    with pytest.raises(ValueError, match="per"):
        model.prune(4, per="column")
    with pytest.raises(ValueError, match="max_support"):
        model.prune(4, max_support=0)


@pytest.mark.parametrize("per", ["target", "source"])
def test_prune_with_cooccurrence_pattern_keeps_nearest_items_by_cosine(per):
    m = random_csr(200, 40, 0.15, seed=8)
    model = EASE(l2=3.0, dtype=torch.float64).fit(m)
    model.prune(top_m=5, per=per, pattern="cooccurrence")
    w = model.weights.toarray()
    g = (m.T @ m).toarray().astype(np.float64)
    cosine = g / np.sqrt(np.outer(np.diag(g), np.diag(g)))
    np.fill_diagonal(cosine, -np.inf)
    axis = 1 if per == "source" else 0  # source: each row's targets; target: each column's sources
    support = w != 0
    assert support.sum(axis=axis).max() <= 5 and not support.diagonal().any()
    kept = np.where(support, cosine, np.inf).min(axis=axis)  # each item's least similar kept neighbour
    fifth = -np.sort(-cosine, axis=axis).take(4, axis=axis)  # each item's 5th nearest
    has = support.any(axis=axis)
    assert has.sum() > 30 and np.all(kept[has] >= fifth[has] - 1e-12)
    np.testing.assert_allclose(w, constrained_ease(g, support, 3.0), atol=1e-10)  # the refit on that pattern
    with pytest.raises(ValueError, match="refit=True"):
        model.prune(4, pattern="cooccurrence", refit=False)
    with pytest.raises(ValueError, match="pattern"):
        model.prune(4, pattern="cosine")


def test_save_load_round_trip(tmp_path):
    m = random_csr(40, 25, 0.2, seed=2)
    model = EASE(l2=4.0).fit(m)
    model.save(tmp_path / "ease.npz")
    back = EASE.load(tmp_path / "ease.npz")
    assert torch.equal(back.weights, model.weights) and back.l2 == 4.0 and back.dtype == torch.float32
    assert (back.train != model.train).nnz == 0
    assert torch.equal(back.recommend(k=5)[1], model.recommend(k=5)[1])
    model.prune(5).save(tmp_path / "pruned.npz")
    back = EASE.load(tmp_path / "pruned.npz")
    assert (back.weights != model.weights).nnz == 0 and back.weights.dtype == model.weights.dtype


def test_bad_input():
    m = random_csr(10, 8, 0.3, seed=1)
    for l2 in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="l2"):
            EASE(l2=l2)
    with pytest.raises(ValueError, match="solver"):
        EASE(solver="magic")
    with pytest.raises(ValueError, match="empty"):
        EASE().fit(sp.csr_matrix((5, 4), dtype=np.float32))
    bad = m.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        EASE().fit(bad)
    bad.data[0] = -1.0
    with pytest.raises(ValueError, match="negative"):
        EASE().fit(bad)
    with pytest.raises(MemoryError, match="solver='sparse'"):
        EASE(solver="dense", max_memory=10).fit(m)
    with pytest.raises(RuntimeError, match="fit"):
        EASE().recommend(k=3)
    model = EASE(l2=1.0).fit(m)
    with pytest.raises(ValueError, match="k must be"):
        model.recommend(k=9)
    with pytest.raises(ValueError, match="users"):
        model.recommend([10], k=3)
    with pytest.raises(ValueError, match="8"):
        model.recommend(histories=sp.csr_matrix((2, 9), dtype=np.float32))


def test_ops_reject_malformed_csr():
    indptr = torch.tensor([0, 2, 3])
    with pytest.raises(ValueError, match="indices must lie in"):
        ops.gram_dense(indptr, torch.tensor([0, 5, 1], dtype=torch.int32), None, 4)
    with pytest.raises(ValueError, match="strictly increasing"):
        ops.gram_dense(indptr, torch.tensor([2, 1, 1], dtype=torch.int32), None, 4)
    with pytest.raises(ValueError, match="end at nnz"):
        ops.gram_dense(torch.tensor([0, 2, 4]), torch.tensor([0, 1, 1], dtype=torch.int32), None, 4)
    with pytest.raises(TypeError, match="int32"):
        ops.gram_dense(indptr, torch.tensor([0, 1, 1]), None, 4)
    with pytest.raises(ValueError, match="k must be"):
        ops.csr_topk_dense(torch.eye(4), indptr, torch.tensor([0, 1, 1], dtype=torch.int32), None, 5)


def test_opcheck():
    m = random_csr(20, 12, 0.3, seed=4, weighted=True)
    x = triple(m)
    w = torch.randn(12, 12)
    ws = sp.csr_matrix(w.numpy())
    torch.library.opcheck(torch.ops.fastrec.gram_dense.default, (*x, 12, torch.float32))
    torch.library.opcheck(torch.ops.fastrec.csr_topk_dense.default, (w, *x, 5, True))
    torch.library.opcheck(torch.ops.fastrec.csr_topk_sparse.default,
                          (*csr_tensors(ws)[:2], torch.from_numpy(ws.data), *x, 5, True))
    g = torch.from_numpy(np.ascontiguousarray((m.T @ m).toarray()))
    torch.library.opcheck(torch.ops.fastrec.ease_dense_.default, (g, 1.0))


def spd_lower(n: int, seed: int):
    """The lower triangle (CSC, float64) of a sparse symmetric positive definite matrix, and the dense matrix."""
    rng = np.random.default_rng(seed)
    a = rng.random((n, n)) * (rng.random((n, n)) < 0.15)
    a = a @ a.T + 2 * np.eye(n)
    low = sp.tril(sp.csr_matrix(a)).tocsc()
    low.sort_indices()
    return (torch.from_numpy(low.indptr.astype(np.int64)), torch.from_numpy(low.indices.astype(np.int32)),
            torch.from_numpy(low.data)), a


def assert_same_csr(got, expect, atol=1e-12):
    assert torch.equal(got[0], expect[0]) and torch.equal(got[1], expect[1])
    for g, e in zip(got[2:], expect[2:]):
        torch.testing.assert_close(g, e, rtol=0, atol=atol)


@pytest.mark.parametrize("cap,tol", [(40, 0.0), (5, 0.0), (3, 0.05), (0, 0.0)])
def test_incomplete_ldl_matches_reference(cap, tol):
    lower, a = spd_lower(40, seed=cap)
    got = ops.incomplete_ldl(*lower, cap, tol)
    assert_same_csr(got, reference.incomplete_ldl(*lower, cap, tol))
    assert (np.diff(got[0].numpy()) <= cap).all() and (got[3] > 0).all()
    if cap == 40 and tol == 0:  # no dropping: the exact factorization
        unit = np.eye(40) + sp.csc_matrix((got[2].numpy(), got[1].numpy(), got[0].numpy()), shape=(40, 40)).toarray()
        np.testing.assert_allclose(unit @ np.diag(got[3].numpy()) @ unit.T, a, atol=1e-12)


@pytest.mark.parametrize("col_cap,row_cap,tol", [(40, 40, 0.0), (4, 6, 0.0), (6, 3, 0.01), (1, 1, 0.0)])
def test_unit_lower_inverse_matches_reference(col_cap, row_cap, tol):
    lower, a = spd_lower(40, seed=1)
    factor = ops.incomplete_ldl(*lower, 40, 0.0)
    got = ops.unit_lower_inverse(*factor, col_cap, row_cap, tol)
    assert_same_csr(got, reference.unit_lower_inverse(*factor, col_cap, row_cap, tol))
    w = sp.csr_matrix((got[2].numpy(), got[1].numpy(), got[0].numpy()), shape=(40, 40)).toarray()
    assert ((w != 0).sum(axis=1) <= row_cap).all() and (np.diagonal(w) > 0).all()
    if col_cap == 40 and row_cap == 40 and tol == 0:  # W^T W is the exact inverse
        np.testing.assert_allclose(w.T @ w, np.linalg.inv(a), atol=1e-12)


def test_sparse_ease_without_budget_is_exact():
    from fastrec.linear.sparse_solver import sparse_ease

    m = random_csr(300, 60, 0.06, seed=8)
    dense = EASE(l2=6.0, dtype=torch.float64).fit(m).weights.numpy()
    for pattern, gram_top_m in (("inverse", 0), ("inverse", 59), ("cooccurrence", 0)):
        # the exact Gram matrix, or a "pruned" one that keeps every entry: every weight kept, so B is exact
        b, seconds = sparse_ease(m, 6.0, top_m=60, pattern=pattern, gram_top_m=gram_top_m, density=60,
                                 drop_tol=0.0, dtype=torch.float64)
        if pattern == "cooccurrence":  # only pairs that co-occur are candidates: compare on that pattern
            g = (m.T @ m).toarray().astype(np.float64)
            np.testing.assert_allclose(b.toarray(), constrained_ease(g, (g != 0) & ~np.eye(60, dtype=bool), 6.0),
                                       atol=1e-10)
        else:
            np.testing.assert_allclose(b.toarray(), dense, atol=1e-10)
    assert set(seconds) == {"gram", "pattern", "refit"}
    # with budgets: the weights are EASE's solution on the chosen pattern, and the model serves from them
    for pattern in ("inverse", "cooccurrence"):
        model = EASE(l2=6.0, solver="sparse", sparse_top_m=10, sparse_pattern=pattern, sparse_density=5,
                     dtype=torch.float64).fit(m)
        assert sp.issparse(model.weights) and model.solver_used == "sparse"
        w = model.weights.toarray()
        assert ((w != 0).sum(axis=1) <= 10).all() and np.diagonal(w).max() == 0
        g = (m.T @ m).toarray().astype(np.float64)
        np.testing.assert_allclose(w, constrained_ease(g, w != 0, 6.0), atol=1e-10)
        s, i = model.recommend(k=5)
        assert i.shape == (300, 5) and torch.isfinite(s).all()
    assert set(model.fit_seconds) == {"gram", "pattern", "refit"}
    cos = (g / np.sqrt(np.diagonal(g))[None, :]) * ~np.eye(60, dtype=bool)  # the co-occurrence ranking of row i
    for i in np.flatnonzero((w != 0).sum(axis=1) == 10):
        assert cos[i, w[i] != 0].min() >= np.sort(cos[i])[-10] - 1e-12
    # a pruned Gram matrix (its dropped entries moved onto the diagonal) still gives finite weights in budget
    model = EASE(l2=6.0, solver="sparse", sparse_top_m=10, sparse_gram_top_m=5, sparse_density=5).fit(m)
    assert ((model.weights != 0).sum(axis=1) <= 10).all() and np.isfinite(model.weights.data).all()
    with pytest.raises(ValueError, match="sparse_gram_top_m"):
        EASE(sparse_gram_top_m=-1)
    with pytest.raises(ValueError, match="sparse_pattern"):
        EASE(sparse_pattern="magic")


@pytest.mark.parametrize("shrink", [0.0, 3.0])
def test_item_knn_matches_brute_force(shrink):
    from fastrec.linear import ItemKNN

    m = random_csr(150, 40, 0.1, seed=6, weighted=True, empty_cols=[7])
    model = ItemKNN(k=5, shrink=shrink).fit(m)
    g = (m.T @ m).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(g))
    sim = g / (np.outer(norms, norms) + shrink + (np.outer(norms, norms) + shrink == 0))
    np.fill_diagonal(sim, 0)
    w = model.weights.toarray()
    for j in range(40):
        expect = np.sort(sim[:, j])[::-1][:5]
        np.testing.assert_allclose(np.sort(w[:, j])[::-1][: (w[:, j] != 0).sum()], expect[expect > 0], rtol=1e-5)
    scores = m.toarray() @ w
    scores[m.toarray() > 0] = -np.inf
    _, ids = model.recommend(k=3)
    np.testing.assert_allclose(np.take_along_axis(scores, ids.numpy(), 1), np.sort(scores, 1)[:, ::-1][:, :3],
                               rtol=1e-5)
    with pytest.raises(ValueError, match="k must be >= 1"):
        ItemKNN(k=0)
