"""FM interaction: fastrec's fused kernel against the square-of-sum torch reference and the naive pairwise sum,
B=4096, F=39, K in {16, 64}, float32, forward and forward+backward.

    python -m pytest benchmarks/test_fm_interaction.py --benchmark-enable --benchmark-group-by=param:dim,param:mode

`test_speedup_target` times fastrec and the reference interleaved in one process and asserts the issue's target:
fused forward+backward at least 2x faster than the torch reference.
"""

from __future__ import annotations

import pytest
import torch

from fastrec.bench import suite, time_interleaved

CASES = {(case.shape, case.mode): case for case in suite.fm_cases()}
SHAPES = sorted({shape for shape, _ in CASES})


@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl", ["fastrec", "torch reference", "naive pairwise"])
def test_fm_interaction(benchmark, impl, shape, mode):
    case = CASES[(shape, mode)]
    fn = case.fastrec if impl == "fastrec" else case.baselines[impl]
    benchmark.group = f"fm_interaction {mode} {shape}"
    if impl == "naive pairwise":  # seconds per call: a few rounds say enough
        benchmark.pedantic(fn, rounds=3, warmup_rounds=1)
    else:
        benchmark(fn)


@pytest.mark.parametrize("shape", SHAPES)
def test_speedup_target(shape):
    case = CASES[(shape, "fwd+bwd")]
    timings = time_interleaved({"fastrec": case.fastrec, "reference": case.baselines["torch reference"]}, rounds=21)
    speedup = timings["reference"].median / timings["fastrec"].median
    print(f"\nfm_interaction fwd+bwd {shape}: reference {timings['reference'].median_ms:.3f} ms, "
          f"fastrec {timings['fastrec'].median_ms:.3f} ms, {speedup:.2f}x (torch threads: {torch.get_num_threads()})")
    assert speedup >= 2.0
