"""Fused sparse optimizers for fastrec's embedding collections: the update is applied inside the backward, to the
touched rows only, after duplicate ids of the batch are aggregated; no dense gradient is ever materialized.

Pass one to ``fastrec.nn.EmbeddingBagCollection(..., optimizer=...)``; the collection owns the optimizer state
(in its ``state_dict``). Change ``lr`` between steps for schedules. The update rules are written out in plain torch
in :func:`fastrec.ops.reference.sparse_optimizer_step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fastrec.ops.embedding import ADAGRAD, ADAM, ROWWISE_ADAGRAD, SGD, FusedUpdate

__all__ = ["FusedAdagrad", "FusedAdam", "FusedOptimizer", "FusedRowWiseAdagrad", "FusedSGD"]


@dataclass
class FusedOptimizer:
    """Base of the fused optimizers: learning rate and L2 weight decay (added to the gradient of touched rows)."""

    lr: float
    weight_decay: float = 0.0

    # The float32 state the collection allocates: one tensor per entry, per weight element or per row.
    state_kinds: ClassVar[tuple[str, ...]] = ()
    reference_name: ClassVar[str] = ""  # the rule's name in fastrec.ops.reference.sparse_optimizer_step
    _code: ClassVar[int] = -1

    def __post_init__(self) -> None:
        if not self.lr >= 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got {self.weight_decay}")
        eps = getattr(self, "eps", 1.0)
        if not eps > 0:
            raise ValueError(f"{type(self).__name__}: eps must be > 0, got {eps}")

    def update(self) -> FusedUpdate:
        """The hyperparameters the fused backward op takes."""
        beta1, beta2 = getattr(self, "betas", (0.0, 0.0))
        return FusedUpdate(self._code, float(self.lr), float(getattr(self, "eps", 0.0)), float(beta1), float(beta2),
                           float(self.weight_decay))


@dataclass
class FusedSGD(FusedOptimizer):
    """w -= lr * g on the touched rows."""

    lr: float = 0.01
    reference_name: ClassVar[str] = "sgd"
    _code: ClassVar[int] = SGD


@dataclass
class FusedAdagrad(FusedOptimizer):
    """Element-wise Adagrad, as torch.optim.Adagrad on sparse gradients: s += g^2; w -= lr * g / (sqrt(s) + eps)."""

    lr: float = 0.01
    eps: float = 1e-10
    state_kinds: ClassVar[tuple[str, ...]] = ("element",)
    reference_name: ClassVar[str] = "adagrad"
    _code: ClassVar[int] = ADAGRAD


@dataclass
class FusedRowWiseAdagrad(FusedOptimizer):
    """Row-wise Adagrad (FBGEMM, TorchRec): one accumulator per row, s += mean(g^2); w -= lr * g / (sqrt(s) + eps).
    D times less optimizer memory than Adagrad; the usual choice for large tables."""

    lr: float = 0.01
    eps: float = 1e-8
    state_kinds: ClassVar[tuple[str, ...]] = ("row",)
    reference_name: ClassVar[str] = "rowwise_adagrad"
    _code: ClassVar[int] = ROWWISE_ADAGRAD


@dataclass
class FusedAdam(FusedOptimizer):
    """Row-sparse (lazy) Adam, as torch.optim.SparseAdam: m and v are updated only for the touched rows; the bias
    correction uses the collection's global step count: w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    state_kinds: ClassVar[tuple[str, ...]] = ("element", "element")
    reference_name: ClassVar[str] = "adam"
    _code: ClassVar[int] = ADAM

    def __post_init__(self) -> None:
        super().__post_init__()
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"FusedAdam: betas must be in [0, 1), got {self.betas}")
