"""Fused sparse optimizers for fastrec's embedding collections: the update is applied inside the backward, to the
touched rows only (non-lazy Adam: then to every other row, with a zero gradient), after duplicate ids of the batch
are aggregated; no dense gradient is ever materialized.

Pass one to ``fastrec.nn.EmbeddingBagCollection(..., optimizer=...)``; the collection owns the optimizer state
(in its ``state_dict``). Change ``lr`` between steps for schedules. The update rules are written out in plain torch
in :func:`fastrec.ops.reference.sparse_optimizer_step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fastrec.ops.embedding import ADAGRAD, ADAM, DENSE_ADAM, ROWWISE_ADAGRAD, SGD, FusedUpdate

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

    @property
    def code(self) -> int:
        """The update rule's code in the fused backward op."""
        return self._code

    def update(self) -> FusedUpdate:
        """The hyperparameters the fused backward op takes."""
        beta1, beta2 = getattr(self, "betas", (0.0, 0.0))
        return FusedUpdate(self.code, float(self.lr), float(getattr(self, "eps", 0.0)), float(beta1), float(beta2),
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
    """Adam; the bias correction uses the collection's global step count t:
    w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps), eps added before the bias correction as in
    torch.optim.SparseAdam, Keras and TF (torch.optim.Adam adds it after: the two differ where sqrt(v) is near eps).

    ``lazy=True`` (default): row-sparse Adam, as torch.optim.SparseAdam: m, v and w change only on the rows a step
    touched, so a step costs its batch, not the table. ``lazy=False``: every row of every table steps, the untouched
    ones with a zero gradient (their moments decay and they keep moving along them): torch.optim.Adam on the dense
    weights, as Keras / TF1 Adam train embeddings. Each step (each training call of the collection) then also passes
    over every table; models trained for few epochs can learn faster (NeuMF on Gowalla, see the README)."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    lazy: bool = True
    state_kinds: ClassVar[tuple[str, ...]] = ("element", "element")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"FusedAdam: betas must be in [0, 1), got {self.betas}")
        if not isinstance(self.lazy, bool):
            raise TypeError(f"FusedAdam: lazy must be a bool, got {self.lazy!r}")

    @property
    def code(self) -> int:
        return ADAM if self.lazy else DENSE_ADAM

    @property
    def reference_name(self) -> str:  # type: ignore[override]
        return "adam" if self.lazy else "dense_adam"
