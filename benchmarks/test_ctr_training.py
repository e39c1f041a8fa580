"""CTR training throughput (samples/s) on synthetic Criteo-shaped data: 13 dense and 26 categorical fields with
Criteo Kaggle's cardinalities capped at FASTREC_BENCH_ROW_CAP rows (default 1M: 5.6M rows), B=4096, K=16.

    python -m pytest benchmarks/test_ctr_training.py -s -k speedup     # fastrec vs the usual way, vs the targets
    python -m pytest benchmarks/test_ctr_training.py -s -k peers       # vs pytorch-fm / DeepCTR-Torch (optional)

fastrec: the zoo model, embeddings updated by fused lazy Adam inside the backward, Adam for the dense parameters.
The usual way: the same model with one nn.Embedding per field, torch ops, torch.optim.Adam over all parameters.
Candidates are timed interleaved in one process (fastrec.bench.time_interleaved); one call is one training step.
Memory: about 1.5 GB per usual-way copy of the tables (weights, gradient, two Adam moments) at the 1M cap.
"""

from __future__ import annotations

import os

import pytest

from fastrec.bench import time_interleaved
from fastrec.bench.ctr import CONFIGS, fastrec_step, peer_steps, usual_step
from fastrec.models import ctr

ROW_CAP = int(os.environ.get("FASTREC_BENCH_ROW_CAP", "1000000"))
BATCH = 4096
TARGETS = {"DeepFM": 3.0, "DLRM": 3.0, "xDeepFM": 2.0, "DCNv2": None}  # minimum speedup over the usual way


def _report(name: str, timings: dict) -> dict[str, float]:
    ours = timings["fastrec"].median
    print(f"\n{name} (B={BATCH}, K=16, rows capped at {ROW_CAP}): fastrec {ours * 1e3:.1f} ms/step, "
          f"{BATCH / ours:,.0f} samples/s")
    ratios = {}
    for other, t in timings.items():
        if other != "fastrec":
            ratios[other] = t.median / ours
            print(f"    {other:24s} {t.median * 1e3:9.1f} ms/step {BATCH / t.median:10,.0f} samples/s  "
                  f"fastrec {ratios[other]:.2f}x")
    return ratios


@pytest.mark.parametrize("name", list(CONFIGS))
def test_speedup_vs_usual_way(name):
    if not hasattr(ctr, name):
        pytest.skip(f"fastrec.models.ctr.{name} is not built yet")
    timings = time_interleaved({"fastrec": fastrec_step(name, row_cap=ROW_CAP, batch=BATCH),
                                "usual way": usual_step(name, row_cap=ROW_CAP, batch=BATCH)},
                               rounds=7, max_seconds=60, min_round_seconds=0.0)
    ratio = _report(name, timings)["usual way"]
    if TARGETS[name] is not None:
        assert ratio >= TARGETS[name], f"{name}: {ratio:.2f}x the usual way, target {TARGETS[name]}x"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_peers(name):
    if not hasattr(ctr, name):
        pytest.skip(f"fastrec.models.ctr.{name} is not built yet")
    peers = peer_steps(name, row_cap=ROW_CAP, batch=BATCH)
    if not peers:
        pytest.skip(f"no installed peer has {name} (pip install torchfm deepctr-torch)")
    _report(name, time_interleaved({"fastrec": fastrec_step(name, row_cap=ROW_CAP, batch=BATCH), **peers},
                                   rounds=5, max_seconds=60, min_round_seconds=0.0))
