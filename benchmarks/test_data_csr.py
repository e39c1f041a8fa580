"""CSR construction: fastrec's two-pass radix build against scipy (COO -> canonical CSR) and the obvious numpy build
(lexsort + unique), on the synthetic Zipf dataset (default 1M users x 100k items, 50M raw interactions in random
order, ~9% repeated pairs; see _data_bench.py for FASTREC_BENCH_DATA).

    python -m pytest benchmarks/test_data_csr.py --benchmark-enable -s
    python -m pytest benchmarks/test_data_csr.py -k target -s          # the interleaved side-by-side run

`test_construction_target` asserts the issue's "a few seconds" (at most 5 s at full scale, measured with all
cores) and that fastrec is faster than scipy (whose build keeps no input order for first/last merging and no ids),
at the full (default) scale only.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import _data_bench as db
from fastrec.bench import time_interleaved
from fastrec.data import Interactions


def fastrec_build(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> Interactions:
    return Interactions.from_arrays(users, items, duplicates="first", user_ids="identity", item_ids="identity",
                                    n_users=n_users, n_items=n_items)


IMPLS = {"fastrec": fastrec_build, "scipy coo->csr": db.scipy_csr, "numpy lexsort": db.numpy_csr}


@pytest.fixture(scope="module")
def data():
    n_users, n_items, _ = db.scale()
    users, items = db.raw_data()
    return users, items, n_users, n_items


@pytest.mark.parametrize("impl", list(IMPLS))
def test_csr_build(benchmark, data, impl):
    users, items, n_users, n_items = data
    benchmark.group = f"csr build {users.size:,} entries"
    slow = impl == "numpy lexsort"  # ~30 s per call at full scale
    benchmark.pedantic(IMPLS[impl], args=(users, items, n_users, n_items), rounds=1 if slow else 3,
                       warmup_rounds=0 if slow else 1)


def test_results_agree(data):
    users, items, n_users, n_items = data
    x = fastrec_build(users, items, n_users, n_items)
    indptr, indices = db.numpy_csr(users, items, n_users, n_items)
    assert np.array_equal(x.indptr, indptr) and np.array_equal(x.indices, indices)


def test_construction_target(data):
    users, items, n_users, n_items = data
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    cands = {name: (lambda f=f: f(users, items, n_users, n_items)) for name, f in IMPLS.items()}
    t = time_interleaved(cands, rounds=3, warmup=0, max_seconds=150, min_rounds=3)
    print(f"\nCSR build of {users.size:,} entries ({n_users:,} users x {n_items:,} items), numba threads "
          f"{numba.get_num_threads()}, medians of {len(t['fastrec'].rounds)} interleaved rounds:")
    for name, tm in t.items():
        print(f"  {name:16s} {tm.median:7.2f} s  {users.size / tm.median / 1e6:6.1f} M entries/s  "
              f"fastrec speedup {tm.median / t['fastrec'].median:5.1f}x")
    if db.scale() == db.FULL_SCALE:  # small inputs fit in the caches, where scipy's simpler build wins
        assert t["fastrec"].median < t["scipy coo->csr"].median
        assert t["fastrec"].median <= 5.0
