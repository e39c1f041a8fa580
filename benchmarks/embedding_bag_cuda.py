"""The embedding bag on a GPU: fastrec's CUDA kernels against one concatenated ``nn.EmbeddingBag`` (baseline (c) of
the CPU suite) with sparse gradients and ``torch.optim.SGD`` / ``SparseAdam``. Criteo's 26 tables capped at 1M rows,
uniform ids, CUDA-event medians.

    python benchmarks/embedding_bag_cuda.py [--reps 30]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch import nn

from fastrec.bench.embedding import criteo_tables, make_batch
from fastrec.nn import EmbeddingBagCollection
from fastrec.optim import FusedAdam, FusedOptimizer, FusedSGD

SHAPES = [(4096, 64, 1), (4096, 64, 20), (65536, 128, 1), (65536, 64, 20)]  # (batch, dim, pooling)


def median_ms(fn: Callable[[], object], reps: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def bench_shape(batch: int, dim: int, pooling: int, reps: int) -> None:
    """Prints the forward and the SGD / Adam step times of one shape. A function per shape, so that its tables and
    optimizer states are freed before the next shape allocates its own."""
    tables = criteo_tables(dim)
    kjt = make_batch(tables, batch, pooling)
    kjt = type(kjt)(kjt.keys, kjt.values.cuda(), offsets=kjt.offsets.cuda())
    rows = torch.tensor([t.num_embeddings for t in tables], device="cuda")
    first_row = rows.cumsum(0) - rows
    global_ids = kjt.values + torch.repeat_interleave(first_row, batch * pooling)
    bag_offsets = kjt.offsets[:-1]
    baseline = nn.EmbeddingBag(int(rows.sum()), dim, mode="sum", sparse=True).cuda()
    features = len(tables)
    grad = torch.randn(batch, features * dim, device="cuda")
    label = f"B={batch} D={dim} pooling={pooling}"

    def baseline_forward() -> torch.Tensor:
        pooled = baseline(global_ids, bag_offsets)  # feature-major bags -> [B, F * D]
        return pooled.view(features, batch, dim).transpose(0, 1).reshape(batch, features * dim)

    def bench_optimizer(name: str, fused: FusedOptimizer, torch_optimizer: torch.optim.Optimizer) -> None:
        collection = EmbeddingBagCollection(tables, optimizer=fused, device="cuda")

        def fastrec_step() -> None:
            collection(kjt, concat=True).backward(grad)

        def baseline_step() -> None:
            torch_optimizer.zero_grad()
            baseline_forward().backward(grad)
            torch_optimizer.step()

        if name == "SGD":
            with torch.no_grad():
                ours = median_ms(lambda: collection(kjt, concat=True), reps)
                theirs = median_ms(baseline_forward, reps)
            print(f"{label} forward: fastrec {ours:.3f} ms, nn.EmbeddingBag {theirs:.3f} ms, {theirs / ours:.2f}x")
        ours, theirs = median_ms(fastrec_step, reps), median_ms(baseline_step, reps)
        print(f"{label} {name} step: fastrec {ours:.3f} ms, nn.EmbeddingBag + torch {theirs:.3f} ms, "
              f"{theirs / ours:.2f}x", flush=True)

    bench_optimizer("SGD", FusedSGD(lr=0.01), torch.optim.SGD(baseline.parameters(), lr=0.01))
    bench_optimizer("Adam", FusedAdam(lr=1e-3), torch.optim.SparseAdam(list(baseline.parameters()), lr=1e-3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("embedding_bag_cuda.py needs a CUDA device")
    for batch, dim, pooling in SHAPES:
        bench_shape(batch, dim, pooling, args.reps)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
