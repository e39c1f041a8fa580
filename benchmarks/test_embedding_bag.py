"""Fused embedding collection vs torch modules and FBGEMM's CPU TBE: 26 tables with Criteo's cardinalities (capped
at 1M rows; 500k at D=128 to stay under 2 GB a copy), B=4096, D in {16, 64, 128}, pooling factor 1 and 20.

    python -m pytest benchmarks/test_embedding_bag.py -s -k targets            # side-by-side ratios vs the targets
    FASTREC_BENCH_DIMS=64 python -m pytest benchmarks/test_embedding_bag.py -s -k targets      # one dim per process (memory)
    python -m pytest benchmarks/test_embedding_bag.py -s -k dense_adam   # non-lazy Adam on NeuMF's Gowalla tables

Each configuration's implementations are timed interleaved in one process (fastrec.bench.time_interleaved); the
table printed gives medians, ratios, and fastrec's forward as a fraction of this machine's random-row gather rate
(torch.index_select of the same number of rows, measured in the same run).
"""

from __future__ import annotations

import os

import pytest

from fastrec.bench import time_interleaved
from fastrec.bench.embedding import dense_adam_cases, embedding_cases, gather_bandwidth

DIMS = tuple(int(d) for d in os.environ.get("FASTREC_BENCH_DIMS", "16").split(","))
POOLINGS = (1, 20)

# (mode, baseline) -> minimum speedup of fastrec over it (the targets on this machine)
TARGETS = {
    ("fwd", "(d) FBGEMM TBE"): 1.0,
    ("fwd+bwd fused row-wise Adagrad", "(d) FBGEMM TBE rowwise_adagrad"): 1.0,
    ("fwd+bwd fused SGD", "(c) + sparse grad + SGD"): 3.0,
    ("fwd+bwd fused Adam", "(c) + SparseAdam"): 5.0,
}
D16_POOLING1_TARGETS = {("fwd", "(c) one nn.EmbeddingBag"): 1.4}


@pytest.mark.parametrize("dim", DIMS)
def test_targets(dim):
    failures = []
    for pooling in POOLINGS:
        cap = 500_000 if dim >= 128 else 1_000_000
        for mode, shape, fastrec, baselines in embedding_cases(dims=(dim,), poolings=(pooling,), row_cap=cap):
            timings = time_interleaved({"fastrec": fastrec, **baselines}, rounds=9, max_seconds=30)
            ours = timings["fastrec"].median
            line = f"{shape:32s} {mode:32s} fastrec {ours * 1e3:8.2f} ms"
            if mode == "fwd":
                lookups = 4096 * 26 * pooling
                line += f" ({lookups * dim * 4 / ours / gather_bandwidth(cap, dim, lookups):.0%} of gather rate)"
            print(line)
            targets = {name: TARGETS.get((mode, name)) or (
                D16_POOLING1_TARGETS.get((mode, name)) if (dim, pooling) == (16, 1) else None) for name in baselines}
            failures += _check_ratios(f"{shape} {mode}", timings, targets)
            del fastrec, baselines, timings  # a failed test's frame stays alive in pytest: not with gigabytes of tables
    assert not failures, failures


@pytest.mark.parametrize("pooling", POOLINGS)
def test_forward_pytest_benchmark(benchmark, pooling):
    mode, shape, fastrec, _ = next(iter(embedding_cases(dims=(16,), poolings=(pooling,))))
    benchmark.group = f"embedding_bag {mode} {shape}"
    benchmark(fastrec)


# non-lazy Adam: fastrec's fused step against the dense-gradient way (nn.Embedding + torch.optim.Adam)
DENSE_ADAM_TARGETS = {"nn.Embedding + dense grad + torch.optim.Adam": 3.0,
                      "nn.Embedding + dense grad + torch.optim.Adam(fused=True)": 1.2}


def test_dense_adam_targets():
    failures = []
    for mode, shape, fastrec, baselines in dense_adam_cases():
        timings = time_interleaved({"fastrec": fastrec, **baselines}, rounds=15, max_seconds=30)
        ours = timings["fastrec"].median
        print(f"{shape} {mode} fastrec {ours * 1e3:8.2f} ms")
        targets = {name: DENSE_ADAM_TARGETS.get(name) for name in baselines}
        failures += _check_ratios(f"{shape} {mode}", timings, targets)
    assert not failures, failures


def _check_ratios(case: str, timings: dict, targets: dict[str, float | None]) -> list[str]:
    """Prints each baseline's median and its ratio to fastrec's; returns the targets it misses."""
    failures = []
    for name, target in targets.items():
        ratio = timings[name].median / timings["fastrec"].median
        verdict = "" if target is None else (" ok" if ratio >= target else f" BELOW TARGET {target}x")
        print(f"    {name:56s} {timings[name].median * 1e3:9.2f} ms  {ratio:6.2f}x{verdict}")
        if target is not None and ratio < target:
            failures.append(f"{case} vs {name}: {ratio:.2f}x < {target}x")
    return failures
