"""The quick benchmark suite behind `fastrec bench`: each fastrec op against the baselines users have today.

A case builds its inputs once and exposes zero-argument callables: fastrec's and one per baseline. Timing is
interleaved (fastrec.bench.timing). Add an op by adding a case factory to CASES.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from fastrec import ops
from fastrec.bench.timing import time_interleaved
from fastrec.ops import reference

__all__ = ["Case", "Result", "fm_cases", "run_suite"]


@dataclass
class Case:
    op: str
    mode: str  # "fwd" or "fwd+bwd"
    shape: str
    fastrec: Callable[[], object]
    baselines: dict[str, Callable[[], object]] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    op: str
    mode: str
    shape: str
    baseline: str
    baseline_ms: float
    fastrec_ms: float

    @property
    def speedup(self) -> float:
        return self.baseline_ms / self.fastrec_ms


def _forward_backward(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> Callable[[], object]:
    out = fn(*inputs)
    grad_out = torch.randn_like(out)

    def run() -> object:
        # autograd.grad rather than .backward(): no accumulation into .grad inflates the time
        return torch.autograd.grad(fn(*inputs), inputs, grad_out)

    return run


def fm_cases(batch: int = 4096, fields: int = 39, dims: tuple[int, ...] = (16, 64)) -> Iterator[Case]:
    """FM interaction, reduce=True: fused kernel vs the square-of-sum torch reference (eager and torch.compile'd:
    compiled on the first call, which the timing's warm-up absorbs) and the naive pairwise sum."""
    generator = torch.Generator().manual_seed(0)
    for dim in dims:
        emb = torch.randn(batch, fields, dim, generator=generator).requires_grad_()
        shape = f"B={batch} F={fields} K={dim}"
        impls = {
            "fastrec": ops.fm_interaction,
            "torch reference": reference.fm_interaction,
            "torch.compile reference": torch.compile(reference.fm_interaction, dynamic=False),
            "naive pairwise": reference.fm_interaction_pairwise,
        }
        for mode in ("fwd", "fwd+bwd"):
            if mode == "fwd":
                calls = {name: (lambda f=f: f(emb.detach())) for name, f in impls.items()}
            else:
                calls = {name: _forward_backward(f, emb) for name, f in impls.items()}
            yield Case("fm_interaction", mode, shape, calls.pop("fastrec"), calls)


def embedding_bag_cases() -> Iterator[Case]:
    """The fused embedding collection on 26 Criteo-sized tables (D=16, pooling 1 and 20) against torch modules
    and FBGEMM's CPU TBE (when installed); see fastrec.bench.embedding."""
    from fastrec.bench.embedding import embedding_cases

    for mode, shape, fastrec, baselines in embedding_cases(dims=(16,), poolings=(1, 20)):
        yield Case("embedding_bag", mode, shape, fastrec, baselines)


def embedding_bag_dense_adam_cases() -> Iterator[Case]:
    """Non-lazy fused Adam on NeuMF's Gowalla tables against nn.Embedding + torch.optim.Adam; see
    fastrec.bench.embedding.dense_adam_cases."""
    from fastrec.bench.embedding import dense_adam_cases

    for mode, shape, fastrec, baselines in dense_adam_cases():
        yield Case("embedding_bag_dense_adam", mode, shape, fastrec, baselines)


def _interaction_cases(op: str, factory_name: str) -> Callable[[], Iterator[Case]]:
    def cases() -> Iterator[Case]:
        from fastrec.bench import interaction

        for mode, shape, fastrec, baselines in getattr(interaction, factory_name)():
            yield Case(op, mode, shape, fastrec, baselines)

    cases.__doc__ = f"See fastrec.bench.interaction.{factory_name}."
    return cases


CASES: dict[str, Callable[[], Iterator[Case]]] = {
    "fm_interaction": fm_cases,
    "embedding_bag": embedding_bag_cases,
    "embedding_bag_dense_adam": embedding_bag_dense_adam_cases,
    "cin": _interaction_cases("cin", "cin_cases"),
    "ffm_interaction": _interaction_cases("ffm_interaction", "ffm_cases"),
    "dot_interaction": _interaction_cases("dot_interaction", "dot_cases"),
    "sparse_fm": _interaction_cases("sparse_fm", "sparse_fm_cases"),
    "crossnet_v2": _interaction_cases("crossnet_v2", "crossnet_cases"),
}


def run_suite(
    only: str | None = None, rounds: int = 15, progress: Callable[[str], None] | None = None
) -> list[Result]:
    """Runs every case (or those whose op name contains ``only``) and returns one Result per baseline."""
    results = []
    for name, factory in CASES.items():
        if only is not None and only not in name:
            continue
        for case in factory():
            if progress is not None:
                progress(f"{case.op} {case.mode} {case.shape}")
            timings = time_interleaved({"fastrec": case.fastrec, **case.baselines}, rounds=rounds)
            for baseline in case.baselines:
                results.append(
                    Result(case.op, case.mode, case.shape, baseline, timings[baseline].median_ms,
                           timings["fastrec"].median_ms)
                )
    return results
