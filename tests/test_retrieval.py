"""fastrec.retrieval: exact blocked top-k against a brute-force sort, FAISS indexes against exact search, exclusion,
save/load, tuning, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fastrec.retrieval import ExactIndex, FaissIndex, load_index, recall_at_k, tune_search


def clustered(n: int, d: int, n_clusters: int, seed: int, spread: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, d))
    return (centers[rng.integers(0, n_clusters, n)] + spread * rng.normal(size=(n, d))).astype(np.float32)


def brute_topk(items: np.ndarray, queries: np.ndarray, k: int, metric: str, exclude=None):
    """Per-query Python sort in float64 (ties: lower id first)."""
    if metric == "cosine":
        items = items / np.linalg.norm(items, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = []
    for qi, q in enumerate(queries.astype(np.float64)):
        s = items.astype(np.float64) @ q
        banned = set() if exclude is None else set(int(x) for x in exclude[qi])
        order = sorted((i for i in range(len(items)) if i not in banned), key=lambda i: (-s[i], i))
        out.append(order[:k] + [-1] * (k - len(order[:k])))
    return np.array(out)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
@pytest.mark.parametrize("item_block", [7, 64, 100000])
def test_exact_index_matches_brute_force(metric, item_block):
    rng = np.random.default_rng(0)
    items = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(50, 16)).astype(np.float32)
    exclude = [rng.choice(300, int(rng.integers(0, 40)), replace=False) for _ in range(50)]
    index = ExactIndex(items, metric, query_block=16, item_block=item_block)
    for excl in (None, exclude):
        scores, ids = index.search(queries, 10, exclude=excl)
        want = brute_topk(items, queries, 10, metric, excl)
        assert (ids.numpy() == want).all()
        # scores are the similarity of the returned ids, decreasing
        v = torch.from_numpy(items)
        q = torch.from_numpy(queries)
        if metric == "cosine":
            v, q = torch.nn.functional.normalize(v, dim=1), torch.nn.functional.normalize(q, dim=1)
        ref = (q[:, None, :] * v[ids]).sum(-1)
        assert torch.allclose(scores, ref, atol=1e-5)
        assert bool((scores[:, 1:] <= scores[:, :1]).all())


def test_exact_index_pads_when_exclusions_leave_fewer_than_k():
    items = np.eye(5, dtype=np.float32)
    index = ExactIndex(items)
    excl = sp.csr_matrix(np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]]))
    q = np.array([[5, 4, 3, 2, 1]] * 2, np.float32)
    scores, ids = index.search(q, 4, exclude=excl)
    assert ids[0].tolist() == [3, 4, -1, -1] and torch.isneginf(scores[0, 2:]).all()
    assert ids[1].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("kind, space", [("flat", "ip"), ("ivf", "ip"), ("hnsw", "ip"), ("hnsw", "l2_reduction")])
def test_faiss_indexes_against_exact(kind, space, tmp_path):
    items = clustered(4000, 24, 40, seed=1)
    queries = clustered(200, 24, 40, seed=2)
    exact = ExactIndex(items)
    _, truth = exact.search(queries, 10)
    index = FaissIndex(kind, nlist=32, nprobe=8, M=16, ef_construction=200, ef_search=256, hnsw_space=space,
                       threads=1).build(items)
    scores, ids = index.search(queries, 10)
    r = recall_at_k(ids, truth)
    # scores are inner products of the returned ids (also through the L2 reduction)
    ip = np.einsum("qd,qkd->qk", queries, items[ids.numpy()])
    assert np.allclose(scores.numpy(), ip, rtol=1e-4, atol=1e-3)
    assert r == 1.0 if kind == "flat" else r > 0.9
    # exclusion: no excluded id comes back, and the results are the best remaining ones
    rng = np.random.default_rng(0)
    seen = [np.concatenate([truth[i, :3].numpy(), rng.choice(4000, 30, replace=False)]) for i in range(200)]
    s_ex, ids_ex = index.search(queries, 10, exclude=seen)
    assert not any(np.intersect1d(a, b).size for a, b in zip(ids_ex.numpy(), seen))
    assert (ids_ex >= 0).all()
    _, truth_ex = exact.search(queries, 10, exclude=seen)
    r_ex = recall_at_k(ids_ex, truth_ex)
    assert r_ex == 1.0 if kind == "flat" else r_ex > 0.9
    # save / load round trip: the same answers, no temporary file left behind
    path = tmp_path / f"{kind}.idx"
    index.save(path)
    loaded = load_index(path)
    assert isinstance(loaded, FaissIndex) and loaded.kind == kind and loaded.params == index.params
    s2, ids2 = loaded.search(queries, 10, exclude=seen)
    assert torch.equal(ids2, ids_ex) and torch.allclose(s2, s_ex)
    assert [p.name for p in tmp_path.iterdir()] == [f"{kind}.idx"]


def test_faiss_exclusion_larger_than_the_overfetch_is_researched():
    items = clustered(1000, 8, 10, seed=3)
    queries = clustered(20, 8, 10, seed=4)
    exact = ExactIndex(items)
    _, top = exact.search(queries, 300)
    # query 0 excludes its 250 best items; the others exclude nothing: the 90th-percentile over-fetch is 0
    seen = [top[0, :250].numpy()] + [np.zeros(0, np.int64)] * 19
    _, ids = FaissIndex("flat").build(items).search(queries, 10, exclude=seen)
    assert ids[0].tolist() == top[0, 250:260].tolist()


def test_cosine_metric_and_exact_save_load(tmp_path):
    items = clustered(500, 12, 5, seed=5) * np.random.default_rng(0).uniform(0.1, 10, (500, 1)).astype(np.float32)
    queries = clustered(30, 12, 5, seed=6)
    exact = ExactIndex(items, "cosine")
    flat = FaissIndex("flat", "cosine").build(items)
    s1, i1 = exact.search(queries, 5)
    s2, i2 = flat.search(queries, 5)
    assert recall_at_k(i2, i1) == 1.0 and torch.allclose(s1, s2, atol=1e-5)
    assert float(s1.max()) <= 1.0 + 1e-5
    exact.save(tmp_path / "exact.idx")
    again = load_index(tmp_path / "exact.idx")
    assert isinstance(again, ExactIndex) and torch.equal(again.search(queries, 5)[1], i1)


@pytest.mark.parametrize("kind, param", [("ivf", "nprobe"), ("hnsw", "ef_search")])
def test_tune_search_reaches_target(kind, param):
    items = clustered(5000, 16, 50, seed=7, spread=0.8)
    held_out = clustered(300, 16, 50, seed=8, spread=0.8)
    index = FaissIndex(kind, nlist=64, nprobe=1, M=8, ef_construction=40, ef_search=10, threads=1).build(items)
    exact = ExactIndex(items)
    res = tune_search(index, held_out, exact, k=10, target_recall=0.97)
    assert res.param == param and res.reached and res.recall >= 0.97
    assert index.params[param] == res.value
    # the chosen value is the first in the grid that reaches the target: the previous one does not
    values = [row[0] for row in res.table]
    assert values[-1] == res.value and all(row[1] < 0.97 for row in res.table[:-1])
    _, ids = index.search(held_out, 10)
    assert recall_at_k(ids, exact.search(held_out, 10)[1]) == pytest.approx(res.recall)


def test_retrieval_bad_input(tmp_path):
    items = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    index = ExactIndex(items)
    q = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"k: must be an integer in \[1, 20\]"):
        index.search(q, 0)
    with pytest.raises(ValueError, match="k: must be"):
        index.search(q, 21)
    with pytest.raises(ValueError, match="queries: expected width 4"):
        index.search(np.ones((2, 5), np.float32), 3)
    with pytest.raises(ValueError, match="queries: contains 1 NaN"):
        index.search(np.array([[1, 2, np.nan, 0]], np.float32), 3)
    with pytest.raises(ValueError, match="exclude: expected 2 id collections"):
        index.search(q, 3, exclude=[[1]])
    with pytest.raises(ValueError, match="exclude: ids must lie in"):
        index.search(q, 3, exclude=[[1], [25]])
    with pytest.raises(ValueError, match="metric"):
        ExactIndex(items, "l2")
    with pytest.raises(ValueError, match="vectors: 1 zero vector"):
        ExactIndex(np.vstack([items, np.zeros((1, 4), np.float32)]), "cosine")
    with pytest.raises(ValueError, match="kind"):
        FaissIndex("pq")
    with pytest.raises(ValueError, match="nlist: 64 lists need"):
        FaissIndex("ivf", nlist=64).build(items)
    with pytest.raises(RuntimeError, match="not been built"):
        FaissIndex("flat").search(q, 3)
    with pytest.raises(ValueError, match="only IVF and HNSW"):
        tune_search(FaissIndex("flat").build(items), q, index)
    np.savez(tmp_path / "x.npz", a=np.zeros(3), __meta__=np.frombuffer(b'{"type": "other"}', np.uint8))
    with pytest.raises(ValueError, match="does not hold a fastrec index"):
        load_index(tmp_path / "x.npz")


def test_default_ivf_sizes_its_lists_to_the_data():
    items = clustered(2000, 8, 10, seed=9)
    index = FaissIndex().build(items)  # the default: IVF, nlist from the item count
    assert index.kind == "ivf" and index.params["nlist"] == 2000 // 39
    queries = clustered(50, 8, 10, seed=10)
    _, truth = ExactIndex(items).search(queries, 10)
    assert recall_at_k(index.search(queries, 10)[1], truth) > 0.9
