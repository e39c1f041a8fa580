"""Benchmarks run with pytest-benchmark: `python -m pytest benchmarks --benchmark-enable`.

Threads: torch uses all cores unless FASTREC_BENCH_THREADS says otherwise; numba and BLAS pools are set by the
suites that use them, so no two pools fight over the same cores.
"""

import os

import torch

if "FASTREC_BENCH_THREADS" in os.environ:
    torch.set_num_threads(int(os.environ["FASTREC_BENCH_THREADS"]))
