"""The training loop: progress bars, early stopping on a validation metric, warm-up / cosine schedules, gradient
clipping and accumulation, fused sparse + Adam optimizers, checkpoints that resume exactly, seeds."""

from __future__ import annotations

import copy
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from fastrec._atomic import atomic_open
from fastrec.evaluate.ctr import evaluate_ctr
from fastrec.features.preprocessing import FeatureTable
from fastrec.nn import EmbeddingBagCollection
from fastrec.optim import FusedOptimizer

__all__ = ["Trainer", "seed_everything"]

_HIGHER_IS_BETTER = {"auc": True, "gauc": True, "logloss": False}


def seed_everything(seed: int) -> None:
    """Seeds Python's, numpy's and torch's generators (call it before building the model so that its
    initialization repeats too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _fused_optimizers(model: nn.Module) -> list[FusedOptimizer]:
    seen: dict[int, FusedOptimizer] = {}
    for m in model.modules():
        if isinstance(m, EmbeddingBagCollection) and m.optimizer is not None:
            seen.setdefault(id(m.optimizer), m.optimizer)
    return list(seen.values())


def _check_labels(data: FeatureTable, what: str, tasks: int) -> np.ndarray:
    if not isinstance(data, FeatureTable):
        raise TypeError(f"{what}: expected a fastrec.features.FeatureTable, got {type(data).__name__}")
    if data.labels is None:
        raise ValueError(f"{what}: the table has no labels (pass label= to Preprocessor.transform)")
    y = data.labels.reshape(len(data), -1)
    if y.shape[1] != tasks:
        raise ValueError(f"{what}: the model has {tasks} task(s) but the labels have {y.shape[1]} column(s) "
                         f"{data.label_names}")
    for t in range(tasks):
        bad = ~((y[:, t] == 0) | (y[:, t] == 1))
        if bad.any():
            name = data.label_names[t] if t < len(data.label_names) else t
            raise ValueError(f"{what}: label column {name!r} must hold 0 or 1, found "
                             f"{np.unique(y[bad, t])[:5].tolist()} in {int(bad.sum())} row(s)")
    return y


class Trainer:
    """Fits a CTR model (``model(batch) -> logits [B]`` or ``[B, tasks]`` with ``model.num_tasks``) with binary
    cross-entropy.

    Args:
        model: the model; its embedding collections carry their fused sparse optimizers.
        lr: Adam's learning rate for the dense parameters.
        weight_decay: AdamW's decoupled weight decay of the dense parameters.
        epochs: the maximum number of epochs.
        batch_size: training batch size (``eval_batch_size`` for evaluation and prediction).
        metric: the validation metric of early stopping and best-model selection: ``"auc"``, ``"gauc"`` or
            ``"logloss"`` (for multi-task models, its mean over the tasks).
        patience: stop after this many epochs without improvement (None: run all epochs).
        restore_best: reload the best validation epoch's weights at the end of :meth:`fit`.
        schedule: ``"constant"`` or ``"cosine"`` (decay to ``min_lr_ratio`` of the base rate at the last step), after
            ``warmup_steps`` linear warm-up steps; both optimizers follow it (the fused ones from their own base lr).
        clip_grad_norm: clip the dense parameters' gradient norm (fused embedding updates happen inside the backward
            and are not clipped).
        accumulation_steps: sum the dense gradients of this many batches (each loss divided by the count) per Adam
            step. Fused embedding updates cannot wait: they are applied in every batch's backward (as in TorchRec's
            fused tables), from that batch's gradient of the divided loss.
        task_weights: per-task loss weights for multi-task models (default all 1).
        seed: seeds the shuffling (per epoch, from (seed, epoch)) and, at the start of :meth:`fit`, torch's generator
            (dropout); the same seed repeats a run.
        checkpoint_dir: write ``last.pt`` after every epoch; ``fit(resume=True)`` continues from it exactly.
        progress: show tqdm progress bars.
        device: where to train (default: the device of the model's first parameter or buffer); the model is moved
            there and each batch is copied there.
    """

    def __init__(self, model: nn.Module, *, lr: float = 1e-3, weight_decay: float = 0.0, epochs: int = 10,
                 batch_size: int = 2048, eval_batch_size: int = 8192, metric: str = "auc", patience: int | None = None,
                 restore_best: bool = True, schedule: str = "constant", warmup_steps: int = 0,
                 min_lr_ratio: float = 0.0, clip_grad_norm: float | None = None, accumulation_steps: int = 1,
                 task_weights: Sequence[float] | None = None, seed: int = 0,
                 checkpoint_dir: str | os.PathLike[str] | None = None, progress: bool = True,
                 device: str | torch.device | None = None) -> None:
        if metric not in _HIGHER_IS_BETTER:
            raise ValueError(f"Trainer: metric must be one of {sorted(_HIGHER_IS_BETTER)}, got {metric!r}")
        if schedule not in ("constant", "cosine"):
            raise ValueError(f"Trainer: schedule must be 'constant' or 'cosine', got {schedule!r}")
        for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                                 ("eval_batch_size", eval_batch_size, 1), ("warmup_steps", warmup_steps, 0),
                                 ("accumulation_steps", accumulation_steps, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"Trainer: {name} must be an int >= {low}, got {value!r}")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ValueError(f"Trainer: patience must be None or an int >= 1, got {patience!r}")
        if device is None:
            device = next(iter(model.parameters()), next(iter(model.buffers()), torch.empty(0))).device
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.tasks = int(getattr(model, "num_tasks", 1))
        weights = [1.0] * self.tasks if task_weights is None else [float(w) for w in task_weights]
        if len(weights) != self.tasks:
            raise ValueError(f"Trainer: task_weights has {len(weights)} entries for {self.tasks} task(s)")
        self.task_weights = torch.tensor(weights)
        self.lr, self.weight_decay, self.epochs = lr, weight_decay, epochs
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.metric, self.patience, self.restore_best = metric, patience, restore_best
        self.schedule, self.warmup_steps, self.min_lr_ratio = schedule, warmup_steps, min_lr_ratio
        self.clip_grad_norm, self.accumulation_steps = clip_grad_norm, accumulation_steps
        self.seed, self.progress = seed, progress
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.fused = _fused_optimizers(model)
        self._fused_base_lr = [o.lr for o in self.fused]
        self.dense_params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.dense_params, lr=lr, weight_decay=weight_decay, fused=True) \
            if self.dense_params else None  # fused: one pass per tensor (see fastrec.models.cf.base.dense_optimizer)
        self.history: list[dict[str, Any]] = []

    # ---- schedule ----
    def _lr_factor(self, step: int, total: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / max(1, total - self.warmup_steps))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def _set_lr(self, factor: float) -> None:
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr * factor
        for opt, base in zip(self.fused, self._fused_base_lr):
            opt.lr = base * factor

    # ---- loss ----
    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        if self.tasks == 1:
            return nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), y.reshape(-1))
        per_task = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(0)
        return (per_task * self.task_weights.to(per_task.device)).sum()

    def _to_device(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.device.type == "cpu":
            return x
        return {k: v.to(self.device, non_blocking=True) for k, v in x.items()}

    # ---- fit ----
    def fit(self, train: FeatureTable, valid: FeatureTable | None = None, *, resume: bool = False
            ) -> list[dict[str, Any]]:
        """Trains; returns the per-epoch history (train loss, validation metrics, lr). With ``valid``, early stopping
        and best-epoch restoring use ``metric`` on it."""
        _check_labels(train, "train", self.tasks)
        if valid is not None:
            _check_labels(valid, "valid", self.tasks)
        batches = train.batches(self.batch_size, shuffle=True, seed=self.seed)
        per_epoch = -(-len(batches) // self.accumulation_steps)
        total = per_epoch * self.epochs
        state = {"epoch": 0, "step": 0, "best": None, "best_epoch": -1, "bad_epochs": 0, "best_state": None}
        torch.manual_seed(self.seed)
        if resume:
            state = self._load_checkpoint(state)
        higher = _HIGHER_IS_BETTER[self.metric]
        for epoch in range(state["epoch"], self.epochs):
            self.model.train()
            losses, rows = 0.0, 0
            bar = tqdm(batches.epoch_batches(epoch), total=len(batches), desc=f"epoch {epoch}", leave=False,
                       disable=not self.progress, dynamic_ncols=True)
            for i, (x, y) in enumerate(bar):
                x, y = self._to_device(x), y.to(self.device, non_blocking=True)
                if i % self.accumulation_steps == 0:
                    self._set_lr(self._lr_factor(state["step"], total))
                loss = self._loss(self.model(x), y)
                (loss / self.accumulation_steps if self.accumulation_steps > 1 else loss).backward()
                last = i + 1 == len(batches)
                if (i + 1) % self.accumulation_steps == 0 or last:
                    if self.optimizer is not None:
                        if self.clip_grad_norm is not None:
                            nn.utils.clip_grad_norm_(self.dense_params, self.clip_grad_norm)
                        self.optimizer.step()
                        self.optimizer.zero_grad(set_to_none=True)
                    state["step"] += 1
                losses += float(loss.detach()) * y.shape[0]
                rows += y.shape[0]
                if i % 50 == 0:
                    bar.set_postfix(loss=f"{losses / rows:.4f}")
            bar.close()
            record: dict[str, Any] = {"epoch": epoch, "train_loss": losses / max(rows, 1),
                                      "lr": self.lr * self._lr_factor(max(state["step"] - 1, 0), total)}
            stop = False
            if valid is not None:
                metrics = self.evaluate(valid, metrics=("auc", "logloss") if self.metric != "gauc" else
                                        ("auc", "logloss", "gauc"))
                record.update({f"valid_{k}": v for k, v in metrics.items()})
                value = metrics[self.metric]
                if state["best"] is None or (value > state["best"] if higher else value < state["best"]):
                    state.update(best=value, best_epoch=epoch, bad_epochs=0)
                    if self.restore_best:
                        state["best_state"] = copy.deepcopy(self.model.state_dict())
                else:
                    state["bad_epochs"] += 1
                    stop = self.patience is not None and state["bad_epochs"] >= self.patience
            self.history.append(record)
            if self.progress:
                tqdm.write(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            state["epoch"] = epoch + 1
            if self.checkpoint_dir is not None:
                self._save_checkpoint(state)
            if stop:
                break
        if valid is not None and self.restore_best and state["best_state"] is not None:
            self.model.load_state_dict(state["best_state"])
        self.best_epoch, self.best_metric = state["best_epoch"], state["best"]
        self._set_lr(1.0)
        return self.history

    # ---- checkpoints ----
    def _save_checkpoint(self, state: dict[str, Any]) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        payload = {"model": self.model.state_dict(),
                   "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                   "state": state, "history": self.history, "torch_rng": torch.get_rng_state(),
                   "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        with atomic_open(self.checkpoint_dir / "last.pt") as f:
            torch.save(payload, f)

    def _load_checkpoint(self, state: dict[str, Any]) -> dict[str, Any]:
        if self.checkpoint_dir is None:
            raise ValueError("fit(resume=True) needs checkpoint_dir")
        path = self.checkpoint_dir / "last.pt"
        if not path.exists():
            return state  # nothing to resume: start from scratch
        payload = torch.load(path, map_location="cpu", weights_only=False)  # written by this class
        self.model.load_state_dict(payload["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(payload["optimizer"])
        self.history = list(payload["history"])
        torch.set_rng_state(payload["torch_rng"])
        if payload.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["cuda_rng"])
        return payload["state"]

    # ---- inference ----
    @torch.no_grad()
    def _logits(self, data: FeatureTable) -> np.ndarray:
        was = self.model.training
        self.model.eval()
        try:
            out = [self.model(self._to_device(x)).reshape(-1, self.tasks).float().cpu().numpy()
                   for x, _ in tqdm(data.batches(self.eval_batch_size), desc="predict", leave=False,
                                    disable=not self.progress)]
        finally:
            self.model.train(was)
        return np.concatenate(out) if out else np.zeros((0, self.tasks), np.float32)

    def predict(self, data: FeatureTable) -> np.ndarray:
        """Click probabilities: ``[n]`` (``[n, tasks]`` for multi-task models)."""
        p = 1.0 / (1.0 + np.exp(-self._logits(data).astype(np.float64)))
        return p[:, 0] if self.tasks == 1 else p

    def evaluate(self, data: FeatureTable, metrics: Sequence[str] = ("auc", "logloss"),
                 groups: str | None = None) -> dict[str, float]:
        """Metrics of :func:`fastrec.evaluate.evaluate_ctr` on ``data``; ``gauc`` groups rows by the feature
        ``groups`` (default: the first feature). Multi-task models report ``metric`` (the mean over tasks) and
        ``metric_<label name>`` per task."""
        y = _check_labels(data, "data", self.tasks)
        logits = self._logits(data)
        batch: tuple = (None, None)
        if "gauc" in metrics:
            key = groups or next(iter(data.columns))
            batch = (None, None, torch.from_numpy(np.asarray(data.columns[key])))
        out: dict[str, float] = {}
        for t in range(self.tasks):
            loader = [(torch.from_numpy(logits[:, t]), torch.from_numpy(y[:, t]), *batch[2:])]
            res = evaluate_ctr(lambda s: s, loader, metrics=metrics).metrics
            if self.tasks == 1:
                return dict(res)
            name = data.label_names[t] if t < len(data.label_names) else str(t)
            out.update({f"{k}_{name}": v for k, v in res.items()})
        for k in metrics:
            out[k] = float(np.mean([out[f"{k}_{n}"] for n in data.label_names[: self.tasks]]))
        return out
