"""CTR training-throughput workload: synthetic Criteo-shaped batches (13 dense, 26 categorical fields with Criteo
Kaggle's cardinalities capped), fastrec's zoo models, the same models written the usual way (one nn.Embedding per
field, torch ops, dense Adam over every parameter), and the peers (pytorch-fm, DeepCTR-Torch) where installed.

Used by benchmarks/test_ctr_training.py. Each ``*_step`` callable runs one training step (forward, BCE loss,
backward, optimizer step) on a fixed batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from fastrec.bench.embedding import CRITEO_CARDINALITIES
from fastrec.features import DenseFeature, SparseFeature
from fastrec.models import ctr
from fastrec.nn import MLP
from fastrec.optim import FusedAdam

__all__ = ["CONFIGS", "criteo_batch", "criteo_features", "fastrec_step", "peer_steps", "usual_step"]

N_DENSE = 13
LR = 1e-3

# Model shapes of the benchmark (K=16): DeepFM and xDeepFM as in their papers' Criteo runs, DLRM as its Criteo
# Kaggle configuration (bottom 512-256-64-16, top 512-256-1), DCN-v2 with 3 full-rank cross layers and a 400-400 MLP.
CONFIGS = {
    "DeepFM": {"hidden": (400, 400, 400)},
    "xDeepFM": {"cin_layers": (128, 128), "hidden": (400, 400)},
    "DCNv2": {"cross_layers": 3, "hidden": (400, 400)},
    "DLRM": {"bottom": (512, 256, 64), "top": (512, 256)},
}


def criteo_features(row_cap: int = 1_000_000) -> list:
    return [DenseFeature(f"I{i + 1}") for i in range(N_DENSE)] + [
        SparseFeature(f"C{i + 1}", min(rows, row_cap)) for i, rows in enumerate(CRITEO_CARDINALITIES)]


def criteo_batch(batch: int = 4096, row_cap: int = 1_000_000, seed: int = 0
                 ) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """(sparse ids int64 [B, 26], dense float32 [B, 13], labels [B], the same as a fastrec feature dict); ids
    uniform over each table."""
    g = torch.Generator().manual_seed(seed)
    sparse = torch.stack([torch.randint(0, min(r, row_cap), (batch,), generator=g) for r in CRITEO_CARDINALITIES], 1)
    dense = torch.log1p(torch.rand(batch, N_DENSE, generator=g) * 100)
    labels = (torch.rand(batch, generator=g) < 0.25).float()
    feats = {f"I{i + 1}": dense[:, i].contiguous() for i in range(N_DENSE)}
    feats.update({f"C{i + 1}": sparse[:, i].contiguous() for i in range(len(CRITEO_CARDINALITIES))})
    return sparse, dense, labels, feats


# ---------------------------------------------------------------------------------------------------- fastrec
def fastrec_model(name: str, dim: int, row_cap: int) -> nn.Module:
    cls = getattr(ctr, name)
    return cls(criteo_features(row_cap), dim, **CONFIGS[name], sparse_optimizer=FusedAdam(lr=LR))


def _step(forward: Callable[[], Tensor], labels: Tensor, optimizer: torch.optim.Optimizer,
          probabilities: bool = False) -> Callable[[], None]:
    loss_fn = nn.functional.binary_cross_entropy if probabilities else nn.functional.binary_cross_entropy_with_logits

    def run() -> None:
        loss_fn(forward().reshape(-1), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


def fastrec_step(name: str, dim: int = 16, row_cap: int = 1_000_000, batch: int = 4096) -> Callable[[], None]:
    """fastrec's model: fused lazy Adam inside the embedding backward, Adam for the dense parameters."""
    model = fastrec_model(name, dim, row_cap).train()
    _, _, labels, feats = criteo_batch(batch, row_cap)
    dense_params = [p for p in model.parameters() if p.requires_grad]
    return _step(lambda: model(feats), labels, torch.optim.Adam(dense_params, lr=LR))


# ---------------------------------------------------------------------------------------------------- the usual way
class _Usual(nn.Module):
    """One nn.Embedding per field (dense gradients), field vectors stacked ``[B, 26, K]``."""

    def __init__(self, dim: int, row_cap: int, linear: bool = False) -> None:
        super().__init__()
        rows = [min(r, row_cap) for r in CRITEO_CARDINALITIES]
        self.embeddings = nn.ModuleList(nn.Embedding(r, dim) for r in rows)
        self.linear = nn.ModuleList(nn.Embedding(r, 1) for r in rows) if linear else None
        self.dense_linear = nn.Linear(N_DENSE, 1) if linear else None
        self.num_fields, self.dim = len(rows), dim

    def fields(self, sparse: Tensor) -> Tensor:
        return torch.stack([e(sparse[:, i]) for i, e in enumerate(self.embeddings)], dim=1)

    def first_order(self, sparse: Tensor, dense: Tensor) -> Tensor:
        return sum(e(sparse[:, i]) for i, e in enumerate(self.linear)).squeeze(1) + self.dense_linear(dense).squeeze(1)


class UsualDeepFM(_Usual):
    def __init__(self, dim: int, row_cap: int, hidden: tuple[int, ...]) -> None:
        super().__init__(dim, row_cap, linear=True)
        self.mlp = MLP(self.num_fields * dim + N_DENSE, hidden, 1)

    def forward(self, sparse: Tensor, dense: Tensor) -> Tensor:
        e = self.fields(sparse)
        fm = 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(1)
        return self.first_order(sparse, dense) + fm + self.mlp(torch.cat([e.flatten(1), dense], 1)).squeeze(1)


class UsualXDeepFM(_Usual):
    """CIN as DeepCTR-Torch / pytorch-fm write it: outer products reshaped, a 1x1 Conv1d per layer, split half."""

    def __init__(self, dim: int, row_cap: int, cin_layers: tuple[int, ...], hidden: tuple[int, ...]) -> None:
        super().__init__(dim, row_cap, linear=True)
        self.convs, prev, out = nn.ModuleList(), self.num_fields, 0
        for i, size in enumerate(cin_layers):
            self.convs.append(nn.Conv1d(self.num_fields * prev, size, 1))
            last = i == len(cin_layers) - 1
            prev = size if last else size // 2
            out += size if last else size // 2
        self.cin_out = nn.Linear(out, 1)
        self.mlp = MLP(self.num_fields * dim + N_DENSE, hidden, 1)

    def forward(self, sparse: Tensor, dense: Tensor) -> Tensor:
        x0 = self.fields(sparse)
        h, pooled = x0, []
        for i, conv in enumerate(self.convs):
            z = torch.relu(conv((x0.unsqueeze(2) * h.unsqueeze(1)).reshape(x0.shape[0], -1, self.dim)))
            if i < len(self.convs) - 1:
                h, direct = torch.split(z, z.shape[1] // 2, dim=1)
            else:
                direct = z
            pooled.append(direct.sum(2))
        cin = self.cin_out(torch.cat(pooled, 1)).squeeze(1)
        deep = self.mlp(torch.cat([x0.flatten(1), dense], 1)).squeeze(1)
        return self.first_order(sparse, dense) + cin + deep


class UsualDCNv2(_Usual):
    """Full-rank cross layers ``x0 * (W x + b) + x`` stacked before the MLP."""

    def __init__(self, dim: int, row_cap: int, cross_layers: int, hidden: tuple[int, ...]) -> None:
        super().__init__(dim, row_cap)
        width = self.num_fields * dim + N_DENSE
        self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(cross_layers))
        self.mlp = MLP(width, hidden, 1)

    def forward(self, sparse: Tensor, dense: Tensor) -> Tensor:
        x0 = torch.cat([self.fields(sparse).flatten(1), dense], 1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.mlp(x).squeeze(1)


class UsualDLRM(_Usual):
    """DLRM as its reference implementation writes it: bottom MLP, bmm of all vectors, the strictly lower triangle."""

    def __init__(self, dim: int, row_cap: int, bottom: tuple[int, ...], top: tuple[int, ...]) -> None:
        super().__init__(dim, row_cap)
        self.bottom = MLP(N_DENSE, (*bottom, dim))  # ReLU after every layer, the last included
        n = self.num_fields + 1
        rows, cols = torch.tril_indices(n, n, offset=-1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.top = MLP(dim + n * (n - 1) // 2, top, 1)

    def forward(self, sparse: Tensor, dense: Tensor) -> Tensor:
        b = self.bottom(dense)
        t = torch.cat([b.unsqueeze(1), self.fields(sparse)], 1)
        z = torch.bmm(t, t.transpose(1, 2))[:, self.rows, self.cols]
        return self.top(torch.cat([b, z], 1)).squeeze(1)


USUAL = {"DeepFM": UsualDeepFM, "xDeepFM": UsualXDeepFM, "DCNv2": UsualDCNv2, "DLRM": UsualDLRM}


def usual_step(name: str, dim: int = 16, row_cap: int = 1_000_000, batch: int = 4096) -> Callable[[], None]:
    """The usual way: one nn.Embedding per field, torch ops, dense torch.optim.Adam over all parameters."""
    model = USUAL[name](dim, row_cap, **CONFIGS[name]).train()
    sparse, dense, labels, _ = criteo_batch(batch, row_cap)
    return _step(lambda: model(sparse, dense), labels, torch.optim.Adam(model.parameters(), lr=LR))


# ---------------------------------------------------------------------------------------------------- peers
def peer_steps(name: str, dim: int = 16, row_cap: int = 1_000_000, batch: int = 4096) -> dict[str, Callable[[], None]]:
    """pytorch-fm (sparse fields only: it has no dense inputs) and DeepCTR-Torch (dense + sparse, its own
    embeddings, l2_reg_embedding=0 so that no regularization pass over the tables is timed), each with Adam, where
    the library has the model and is installed."""
    sparse, dense, labels, _ = criteo_batch(batch, row_cap)
    rows = [min(r, row_cap) for r in CRITEO_CARDINALITIES]
    cfg = CONFIGS[name]
    steps: dict[str, Callable[[], None]] = {}
    try:
        from torchfm.model import dfm, xdfm
        torchfm_models = {
            "DeepFM": lambda: dfm.DeepFactorizationMachineModel(rows, dim, cfg["hidden"], 0.0),
            "xDeepFM": lambda: xdfm.ExtremeDeepFactorizationMachineModel(rows, dim, cfg["cin_layers"], True,
                                                                         cfg["hidden"], 0.0),
        }
        if name in torchfm_models:
            m = torchfm_models[name]().train()
            steps["pytorch-fm"] = _step(lambda m=m: m(sparse), labels, torch.optim.Adam(m.parameters(), lr=LR),
                                        probabilities=True)
    except ImportError:
        pass
    try:
        from deepctr_torch import models as dc
        from deepctr_torch.inputs import DenseFeat, SparseFeat
        columns = [SparseFeat(f"C{i + 1}", r, embedding_dim=dim) for i, r in enumerate(rows)] + [
            DenseFeat(f"I{i + 1}", 1) for i in range(N_DENSE)]
        common = {"l2_reg_embedding": 0.0, "device": "cpu"}
        deepctr_models = {
            "DeepFM": lambda: dc.DeepFM(columns, columns, dnn_hidden_units=cfg["hidden"], **common),
            "xDeepFM": lambda: dc.xDeepFM(columns, columns, dnn_hidden_units=cfg["hidden"],
                                          cin_layer_size=cfg["cin_layers"], **common),
            "DCNv2": lambda: dc.DCN(columns, columns, cross_num=cfg["cross_layers"], cross_parameterization="matrix",
                                    dnn_hidden_units=cfg["hidden"], **common),
        }
        if name in deepctr_models:
            m = deepctr_models[name]().train()
            x = torch.cat([sparse.float(), dense], 1)  # DeepCTR-Torch's input: one float matrix, columns in order
            steps["DeepCTR-Torch"] = _step(lambda m=m: m(x), labels, torch.optim.Adam(m.parameters(), lr=LR),
                                           probabilities=True)
    except ImportError:
        pass
    return steps
