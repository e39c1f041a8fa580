"""Embedding-bag workload: 26 tables with Criteo's cardinalities (capped), feature-major batches, and the
implementations users have today, for `fastrec bench` and benchmarks/test_embedding_bag.py.

Baselines: (a) a ModuleList of nn.Embedding (+ sum over the bag), (b) a ModuleList of nn.EmbeddingBag, (c) one
nn.EmbeddingBag over the concatenated tables with per-table row offsets added to the ids (the offsets trick), each
trained with sparse gradients and a torch optimizer, and (d) FBGEMM's CPU table-batched embedding
(fbgemm-gpu-cpu, optional: skipped when not installed) with its fused optimizers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from fastrec import KeyedJagged
from fastrec.nn import EmbeddingBagCollection, TableConfig
from fastrec.nn._huge_pages import empty_table
from fastrec.optim import FusedAdam, FusedOptimizer, FusedRowWiseAdagrad, FusedSGD

__all__ = ["CRITEO_CARDINALITIES", "criteo_tables", "dense_adam_cases", "embedding_cases", "gather_bandwidth"]

# Criteo Kaggle's 26 categorical cardinalities (as in the DLRM benchmarks).
CRITEO_CARDINALITIES = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
                        5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572)
LR = 0.01


def criteo_tables(dim: int, row_cap: int = 1_000_000) -> list[TableConfig]:
    return [TableConfig(f"C{i + 1}", min(rows, row_cap), dim) for i, rows in enumerate(CRITEO_CARDINALITIES)]


def make_batch(tables: list[TableConfig], batch: int, pooling: int, seed: int = 0) -> KeyedJagged:
    """Every feature has `pooling` ids per example, uniform over its table (no cache-friendly skew)."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.cat([torch.randint(0, t.num_embeddings, (batch * pooling,), generator=gen) for t in tables])
    offsets = torch.arange(0, values.numel() + 1, pooling, dtype=torch.int64)
    return KeyedJagged([t.name for t in tables], values, offsets=offsets)


def gather_bandwidth(num_rows: int, dim: int, lookups: int, repeats: int = 5) -> float:
    """This machine's random-row gather rate in bytes/s: index_select of `lookups` uniform rows of a table of
    `num_rows` x `dim` float32, the ceiling of a pooled lookup that reads each row once. The table is allocated as
    fastrec's own tables are (huge pages where the system allows), so the ceiling is not lowered by TLB misses."""
    table = empty_table((num_rows, dim), torch.float32).normal_()
    rows = torch.randint(0, num_rows, (lookups,))
    out = torch.empty(lookups, dim)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.index_select(table, 0, rows, out=out)
        best = min(best, time.perf_counter() - start)
    return lookups * dim * 4 / best


class _Baselines:
    """The torch implementations over copies of one set of weights."""

    def __init__(self, weights: list[Tensor], tables: list[TableConfig], kjt: KeyedJagged, pooling: int) -> None:
        self.pooling, self.batch = pooling, kjt.batch_size
        self.embedding_list = nn.ModuleList(nn.Embedding.from_pretrained(w.clone(), freeze=False, sparse=True)
                                            for w in weights)
        self.bag_list = nn.ModuleList(nn.EmbeddingBag.from_pretrained(w.clone(), freeze=False, mode="sum", sparse=True)
                                      for w in weights)
        self.weights = weights
        starts = torch.tensor([0] + [t.num_embeddings for t in tables[:-1]]).cumsum(0)
        self.row_starts = starts.repeat_interleave(self.batch * pooling)
        self.kjt = kjt
        self.per_feature = [kjt.values[kjt.feature_range(i)[0] : kjt.feature_range(i)[1]] for i in range(len(tables))]

    def embedding_list_forward(self) -> Tensor:
        return torch.cat([emb(ids.view(self.batch, self.pooling)).sum(1)
                          for emb, ids in zip(self.embedding_list, self.per_feature)], dim=1)

    def bag_list_forward(self) -> Tensor:
        offsets = torch.arange(0, self.batch * self.pooling, self.pooling)
        return torch.cat([bag(ids, offsets) for bag, ids in zip(self.bag_list, self.per_feature)], dim=1)

    def concatenated(self, sparse: bool = True) -> nn.EmbeddingBag:
        """(c): one nn.EmbeddingBag over all tables, concatenated."""
        return nn.EmbeddingBag.from_pretrained(torch.cat(self.weights), freeze=False, mode="sum", sparse=sparse)

    def concatenated_forward(self, bag: nn.EmbeddingBag) -> Callable[[], Tensor]:
        def run() -> Tensor:
            out = bag(self.kjt.values + self.row_starts, self.kjt.offsets[:-1])
            return out.view(len(self.per_feature), self.batch, -1).transpose(0, 1).reshape(self.batch, -1)

        return run


def _fbgemm(weights: list[Tensor], optimizer: str) -> nn.Module | None:
    try:
        from fbgemm_gpu.split_embedding_configs import EmbOptimType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            ComputeDevice,
            EmbeddingLocation,
            SplitTableBatchedEmbeddingBagsCodegen,
        )
    except ImportError:
        return None
    kinds = {"sgd": EmbOptimType.EXACT_SGD, "rowwise_adagrad": EmbOptimType.EXACT_ROWWISE_ADAGRAD}
    tbe = SplitTableBatchedEmbeddingBagsCodegen(
        [(w.shape[0], w.shape[1], EmbeddingLocation.HOST, ComputeDevice.CPU) for w in weights],
        optimizer=kinds[optimizer], learning_rate=LR, eps=1e-8, pooling_mode=PoolingMode.SUM,
    )
    with torch.no_grad():
        for mine, theirs in zip(weights, tbe.split_embedding_weights()):
            theirs.copy_(mine)
    return tbe


def _train_step(forward: Callable[[], Tensor], grad_out: Tensor, optimizer: torch.optim.Optimizer | None = None):
    def run() -> None:
        forward().backward(grad_out)
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    return run


def embedding_cases(dims: tuple[int, ...] = (16,), poolings: tuple[int, ...] = (1, 20), batch: int = 4096,
                    row_cap: int = 1_000_000, with_dense: bool = False) -> Iterator[tuple[str, str, Callable, dict]]:
    """Yields (mode, shape, fastrec callable, {baseline name: callable}) per configuration, building
    each configuration's models only when it is reached (a D=128 set of tables is gigabytes)."""
    for dim in dims:
        tables = criteo_tables(dim, row_cap)
        for pooling in poolings:
            kjt = make_batch(tables, batch, pooling)
            shape = f"26 tables B={batch} D={dim} L={pooling}"
            grad_out = torch.randn(batch, 26 * dim)

            def collection(optimizer: FusedOptimizer | None) -> EmbeddingBagCollection:
                torch.manual_seed(0)
                return EmbeddingBagCollection(tables, optimizer=optimizer)

            inference = collection(None).eval()
            weights = [inference.table_weight(t.name).detach() for t in tables]
            torch_impls = _Baselines(weights, tables, kjt, pooling)
            tbe = _fbgemm(weights, "sgd")
            forward = {
                "(a) nn.Embedding list": torch_impls.embedding_list_forward,
                "(b) nn.EmbeddingBag list": torch_impls.bag_list_forward,
                "(c) one nn.EmbeddingBag": torch_impls.concatenated_forward(torch_impls.concatenated()),
            }
            if tbe is not None:
                forward["(d) FBGEMM TBE"] = lambda tbe=tbe: tbe(kjt.values, kjt.offsets)

            def no_grad(fn: Callable[[], Tensor]) -> Callable[[], Tensor]:
                def run() -> Tensor:
                    with torch.no_grad():
                        return fn()
                return run

            yield ("fwd", shape, no_grad(lambda m=inference: m(kjt, concat=True)),
                   {name: no_grad(fn) for name, fn in forward.items()})
            del forward, tbe

            bag = torch_impls.concatenated()
            concat_sgd = _train_step(torch_impls.concatenated_forward(bag), grad_out, torch.optim.SGD(bag.parameters(), lr=LR))
            for label, optimizer, fbgemm_name in (("fused SGD", FusedSGD(lr=LR), "sgd"),
                                                  ("fused row-wise Adagrad", FusedRowWiseAdagrad(lr=LR),
                                                   "rowwise_adagrad")):
                fused = collection(optimizer)
                baselines = {"(c) + sparse grad + SGD": concat_sgd}
                if with_dense:
                    dense = torch_impls.concatenated(sparse=False)
                    baselines["(c) + dense grad + SGD"] = _train_step(
                        torch_impls.concatenated_forward(dense), grad_out, torch.optim.SGD(dense.parameters(), lr=LR))
                tbe = _fbgemm(weights, fbgemm_name)
                if tbe is not None:
                    baselines[f"(d) FBGEMM TBE {fbgemm_name}"] = _train_step(
                        lambda tbe=tbe: tbe(kjt.values, kjt.offsets), grad_out)
                yield (f"fwd+bwd {label}", shape,
                       _train_step(lambda m=fused: m(kjt, concat=True), grad_out), baselines)
                del fused, tbe, baselines
            del bag, concat_sgd
            adam_bag = torch_impls.concatenated()
            sparse_adam = torch.optim.SparseAdam(adam_bag.parameters(), lr=LR)
            fused_adam = collection(FusedAdam(lr=LR))
            yield ("fwd+bwd fused Adam", shape,
                   _train_step(lambda m=fused_adam: m(kjt, concat=True), grad_out),
                   {"(c) + SparseAdam": _train_step(torch_impls.concatenated_forward(adam_bag), grad_out, sparse_adam)})
            del fused_adam, adam_bag, sparse_adam, torch_impls, inference


def dense_adam_cases(batch: int = 1024, users: int = 29_858, items: int = 40_981,
                     dims: tuple[int, ...] = (64, 32)) -> Iterator[tuple[str, str, Callable, dict]]:
    """Adam on every row each step (``FusedAdam(lazy=False)``) on NeuMF's Gowalla tables, a user and an item table
    per part (GMF 64-d, MLP 32-d), one id per feature and example: fastrec's fused step against the same tables as
    nn.Embedding with dense gradients and torch.optim.Adam (how Keras and BARS train them), and against fastrec's
    lazy Adam (what stepping every row costs)."""
    tables = [TableConfig(f"{side}_{dim}", rows, dim)
              for dim in dims for side, rows in (("user", users), ("item", items))]
    kjt = make_batch(tables, batch, pooling=1)
    grad_out = torch.randn(batch, 2 * sum(dims))
    per_feature = [kjt.values[kjt.feature_range(i)[0] : kjt.feature_range(i)[1]] for i in range(len(tables))]
    dense, lazy = (EmbeddingBagCollection(tables, FusedAdam(lr=LR, lazy=is_lazy)) for is_lazy in (False, True))
    baselines = {"fastrec lazy Adam": _train_step(lambda: lazy(kjt, concat=True), grad_out)}
    for label, fused in (("torch.optim.Adam", False), ("torch.optim.Adam(fused=True)", True)):
        embeddings = nn.ModuleList(nn.Embedding.from_pretrained(dense.table_weight(t.name).detach().clone(),
                                                                freeze=False) for t in tables)
        adam = torch.optim.Adam(embeddings.parameters(), lr=LR, fused=fused)
        baselines[f"nn.Embedding + dense grad + {label}"] = _train_step(
            lambda e=embeddings: torch.cat([emb(ids) for emb, ids in zip(e, per_feature)], dim=1), grad_out, adam)
    shape = f"{len(tables)} tables ({users:,} / {items:,} rows) B={batch} D={'+'.join(map(str, dims))}"
    yield "fwd+bwd fused dense Adam", shape, _train_step(lambda: dense(kjt, concat=True), grad_out), baselines
