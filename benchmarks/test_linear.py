"""Closed-form linear models: the Gram kernel against scipy and torch sparse, and the dense EASE solve against the
usual ``np.linalg.inv`` closed form.

    python -m pytest benchmarks/test_linear.py -s -k gram        # X^T X at n = 2k, 5k, 10k, 20k (a few minutes)
    python -m pytest benchmarks/test_linear.py -s -k solve       # EASE at n = 10k vs numpy, and n = 20k (~10 min)

Data: 100k users with ~50 interactions each (log-normal activity), Zipf item popularity (fastrec.data's synthetic
generator). Interleaved rounds in one process, medians (fastrec.bench.time_interleaved); float32 throughout.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from fastrec import ops
from fastrec.bench import time_interleaved
from fastrec.data import synthetic_interactions
from fastrec.linear._base import csr_tensors

N_USERS = 100_000


def _data(n_items: int):
    x = synthetic_interactions(N_USERS, n_items, 50 * N_USERS, seed=0).to_scipy()
    return x, csr_tensors(x)


@pytest.mark.parametrize("n_items", [2000, 5000, 10000, 20000])
def test_gram_speed(n_items):
    x, (indptr, indices, values) = _data(n_items)
    xt = x.T.tocsr()
    rows = torch.repeat_interleave(torch.arange(x.shape[0]), indptr[1:] - indptr[:-1])
    tx = torch.sparse_coo_tensor(torch.stack([rows, indices.long()]), torch.ones(x.nnz), x.shape).coalesce()
    txt = tx.t().coalesce()
    g = ops.gram_dense(indptr, indices, values, n_items)
    np.testing.assert_array_equal(g.numpy(), (xt @ x).toarray())
    del g
    t = time_interleaved({
        "fastrec gram_dense": lambda: ops.gram_dense(indptr, indices, values, n_items),
        "scipy X.T @ X": lambda: xt @ x,
        "scipy X.T @ X, toarray": lambda: (xt @ x).toarray(),
        "torch.sparse.mm": lambda: torch.sparse.mm(txt, tx),
    }, rounds=5, max_seconds=60)
    base = t["fastrec gram_dense"].median
    print(f"\ngram n={n_items} nnz(X)={x.nnz} threads={torch.get_num_threads()} load={os.getloadavg()[0]:.1f}")
    for name, v in t.items():
        print(f"  {name:26s} {v.median * 1e3:9.1f} ms  {v.median / base:5.2f}x fastrec's time")


def _numpy_closed_form(g: np.ndarray, l2: float) -> np.ndarray:
    """The closed form as usually written (EASE paper's listing): float32 input, numpy computes the inverse in
    float64 (np.linalg.inv upcasts)."""
    p = np.linalg.inv(g + l2 * np.eye(g.shape[0], dtype=g.dtype))
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b


def test_solve_speed_10k():
    n, l2 = 10_000, 200.0
    x, (indptr, indices, values) = _data(n)
    g0 = ops.gram_dense(indptr, indices, values, n)
    g_np = g0.numpy().copy()
    timings = {"fastrec": [], "numpy inv": []}
    for _ in range(2):  # interleaved, two rounds each (a numpy round takes minutes)
        g = g0.clone()
        t0 = time.perf_counter()
        ops.ease_dense_(g, l2)
        timings["fastrec"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b_np = _numpy_closed_form(g_np, l2)
        timings["numpy inv"].append(time.perf_counter() - t0)
    diff = float(np.abs(g.numpy() - b_np).max())
    ours, theirs = np.median(timings["fastrec"]), np.median(timings["numpy inv"])
    print(f"\nEASE solve n={n} float32: fastrec {ours:.1f} s, numpy inv closed form {theirs:.1f} s, "
          f"speedup {theirs / ours:.2f}x, max |B - B_numpy| = {diff:.2e}, threads={torch.get_num_threads()}, "
          f"load={os.getloadavg()[0]:.1f}")
    assert diff < 1e-4


def test_solve_speed_20k():
    n = 20_000
    x, (indptr, indices, values) = _data(n)
    t0 = time.perf_counter()
    g = ops.gram_dense(indptr, indices, values, n)
    t1 = time.perf_counter()
    ops.ease_dense_(g, 200.0)
    t2 = time.perf_counter()
    # the solve's flop rate against the same process's GEMM rate (potrf + potri: n^3 flops)
    a = torch.randn(4096, 4096)
    t3 = time.perf_counter()
    a @ a
    gemm = 2 * 4096**3 / (time.perf_counter() - t3)
    print(f"\nEASE n={n} float32: gram {t1 - t0:.1f} s + solve {t2 - t1:.1f} s = {t2 - t0:.1f} s (target 90 s); "
          f"solve {n**3 / (t2 - t1) / 1e9:.0f} GFLOP/s vs GEMM {gemm / 1e9:.0f} GFLOP/s, "
          f"threads={torch.get_num_threads()}, load={os.getloadavg()[0]:.1f}")
    assert torch.isfinite(g).all() and not torch.diagonal(g).any()
