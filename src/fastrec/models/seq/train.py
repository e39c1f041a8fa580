"""The training loop shared by the sequential models: Adam, seeded epochs, tqdm progress, validation-only early
stopping, and the best model kept (and optionally written to a checkpoint file with the model's ``save``)."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from fastrec.data import Interactions, Sessions
from fastrec.models.seq._sequences import as_jagged, check_int, sequences_of

__all__ = ["FitResult", "TrainSequences", "decayed_parameters", "fit", "lr_factor", "make_optimizer"]


@dataclass
class TrainSequences:
    """Jagged training sequences, the rows long enough to train on, and (when a model samples negatives per row)
    each row's items as :class:`Interactions` for the sampler's exclusion."""

    offsets: np.ndarray
    items: np.ndarray
    rows: np.ndarray
    positives: Interactions | None

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)[self.rows]

    @classmethod
    def build(cls, train: Any, n_items: int, min_len: int, positives: bool) -> TrainSequences:
        """From time-ordered :class:`Interactions` (one row per user), :class:`fastrec.data.Sessions`, or any
        histories form (jagged tuple, padded array, list of sequences)."""
        if isinstance(train, Interactions):
            if train.n_items > n_items:
                raise ValueError(f"train has {train.n_items} items but the model was built for n_items={n_items}")
            offsets, items = sequences_of(train)
        elif isinstance(train, Sessions):
            offsets, items = train.offsets.astype(np.int64), train.items.astype(np.int64)
        else:
            offsets, items = as_jagged(train)
        if items.size and (items.min() < 0 or items.max() >= n_items):
            k = int(np.flatnonzero((items < 0) | (items >= n_items))[0])
            raise ValueError(f"train: item id {int(items[k])} is out of range [0, {n_items})")
        rows = np.flatnonzero(np.diff(offsets) >= min_len)
        if rows.size == 0:
            raise ValueError(f"train: no sequence has at least {min_len} items")
        pos = None
        if positives:
            n = offsets.size - 1
            pos = Interactions.from_arrays(np.repeat(np.arange(n), np.diff(offsets)), items, duplicates="max",
                                           user_ids="identity", item_ids="identity", n_users=n, n_items=n_items)
        return cls(offsets, items, rows, pos)


@dataclass
class FitResult:
    """What ``fit`` did: the best validation metrics and their epoch, one record per epoch, and the time spent."""

    best_epoch: int
    best: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    sequences: int = 0
    stopped_early: bool = False
    interrupted: bool = False

    @property
    def sequences_per_second(self) -> float:
        """Training throughput (training sequences per second of training time, evaluation excluded)."""
        return self.sequences / self.train_seconds if self.train_seconds else 0.0


OPTIMIZERS = ("adam", "adamw")


def decayed_parameters(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """(parameters decoupled weight decay applies to, the others: LayerNorm weights and every bias), as BERT's and
    BERT4Rec's reference optimizers split them."""
    norm = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if id(p) in norm or name.endswith("bias") else decay).append(p)
    return decay, no_decay


def make_optimizer(model: torch.nn.Module, lr: float, betas: tuple[float, float], weight_decay: float,
                   optimizer: str = "adam") -> list[torch.optim.Optimizer]:
    """Adam for the dense parameters (torch's fused kernel: one pass per parameter instead of a chain of elementwise
    ops), and lazy Adam (``SparseAdam``: only the rows a batch touched, no weight decay) for the tables of
    embeddings built with ``sparse=True``, which large catalogs use to avoid a dense gradient and a dense Adam step
    per batch. ``optimizer="adam"`` adds ``weight_decay`` times the weights to every dense gradient (L2);
    ``"adamw"`` decays the weights directly (``torch.optim.AdamW``), all dense parameters but the LayerNorm weights
    and the biases (:func:`decayed_parameters`)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    sparse = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.sparse
              for p in m.parameters()}
    dense_params = [p for p in model.parameters() if id(p) not in sparse]
    sparse_params = [p for p in model.parameters() if id(p) in sparse]
    if optimizer == "adam":
        dense: torch.optim.Optimizer = torch.optim.Adam(dense_params, lr=lr, betas=betas, weight_decay=weight_decay,
                                                        fused=True)
    else:
        groups = [{"params": [p for p in params if id(p) not in sparse], "weight_decay": wd}
                  for params, wd in zip(decayed_parameters(model), (weight_decay, 0.0))]
        dense = torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
    opts: list[torch.optim.Optimizer] = [dense]
    if sparse_params:
        opts.append(torch.optim.SparseAdam(sparse_params, lr=lr, betas=betas))
    return opts


def lr_factor(step: int, epoch: int, epochs: int, warmup_steps: int, decay: str) -> float:
    """The learning rate's multiplier at optimizer ``step`` (from 0) of ``epoch``: a linear warmup from
    ``1 / warmup_steps`` to 1 over the first ``warmup_steps`` steps, times, with ``decay="linear"``, ``1 - epoch /
    epochs`` (a linear decay towards 0 at the last epoch, per epoch because the models' batches per epoch vary;
    BERT4Rec's reference code warms up and decays linearly)."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return warm * (1.0 - epoch / epochs if decay == "linear" else 1.0)


def fit(
    model: Any,
    data: TrainSequences,
    *,
    epochs: int = 200,
    batch_size: int = 256,
    lr: float = 1e-3,
    warmup_steps: int = 0,
    lr_decay: str = "none",
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    betas: tuple[float, float] = (0.9, 0.98),
    valid: Callable[[Any], dict[str, float]] | None = None,
    monitor: str = "ndcg@10",
    eval_every: int = 1,
    patience: int = 10,
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    max_seconds: float | None = None,
    progress: bool = True,
) -> FitResult:
    """Trains ``model`` (a :class:`SequentialRecommender`) with Adam or AdamW.

    Args:
        epochs: maximum number of passes over the training sequences.
        warmup_steps, lr_decay: the learning rate ramps up linearly over the first ``warmup_steps`` optimizer steps
            and, with ``lr_decay="linear"`` (default ``"none"``), decreases linearly per epoch towards 0 at
            ``epochs`` (see :func:`lr_factor`).
        weight_decay, optimizer: ``"adam"`` (default) applies ``weight_decay`` as L2 on every dense parameter;
            ``"adamw"`` as decoupled weight decay, LayerNorm weights and biases excluded (see
            :func:`make_optimizer`).
        valid: ``model -> {metric: value}`` on the *validation* split (never the test split), called every
            ``eval_every`` epochs; the model with the best ``valid(model)[monitor]`` (higher is better) is kept and
            restored at the end. Without it the last epoch's model is kept.
        patience: stop after this many evaluations without improvement.
        seed: seeds the epoch orders, the sampled negatives/masks and torch's RNG (dropout); runs with the same seed
            and thread count repeat exactly.
        checkpoint: where to write the best model so far (``model.save``, atomic); load it with ``type(model).load``.
        max_seconds: stop after the epoch during which training time passed this budget.
        progress: a tqdm bar per epoch and one line per evaluation.
    """
    if valid is None and checkpoint is not None:
        raise ValueError("checkpoint needs valid: the checkpoint holds the best model on the validation split")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("eval_every", eval_every),
                    ("patience", patience)):
        check_int(name, v)
    check_int("warmup_steps", warmup_steps, low=0)
    if lr_decay not in ("none", "linear"):
        raise ValueError(f"lr_decay must be 'none' or 'linear', got {lr_decay!r}")
    torch.manual_seed(seed)
    opt = make_optimizer(model, lr, betas, weight_decay, optimizer)
    result = FitResult(best_epoch=-1, best={})
    best_value = -float("inf")
    best_state: dict[str, torch.Tensor] | None = None
    bad, step = 0, 0
    scheduled = warmup_steps > 0 or lr_decay != "none"
    try:  # Ctrl-C (SIGINT) ends training early and keeps the best model so far
        for epoch in range(epochs):
            model.train()
            t0 = time.perf_counter()
            total, n_seq, n_batches = 0.0, 0, 0
            bar = tqdm(model._batches(data, batch_size, epoch, seed), desc=f"{type(model).__name__} epoch {epoch}",
                       disable=not progress, leave=False, mininterval=2.0)
            for batch in bar:
                if scheduled:
                    for o in opt:
                        for group in o.param_groups:
                            group["lr"] = lr * lr_factor(step, epoch, epochs, warmup_steps, lr_decay)
                loss, n = model._loss(batch)
                for o in opt:
                    o.zero_grad(set_to_none=True)
                loss.backward()
                for o in opt:
                    o.step()
                total += float(loss.detach())
                n_seq += n
                n_batches += 1
                step += 1
            bar.close()
            seconds = time.perf_counter() - t0
            result.train_seconds += seconds
            result.sequences += n_seq
            record = {"epoch": epoch, "loss": total / max(n_batches, 1), "seconds": seconds,
                      "sequences_per_second": n_seq / seconds if seconds else 0.0}
            out_of_time = max_seconds is not None and result.train_seconds >= max_seconds
            if valid is not None and ((epoch + 1) % eval_every == 0 or epoch == epochs - 1 or out_of_time):
                t1 = time.perf_counter()
                metrics = valid(model)
                result.eval_seconds += time.perf_counter() - t1
                if monitor not in metrics:
                    raise KeyError(f"monitor={monitor!r} is not among the validation metrics {sorted(metrics)}")
                record.update(metrics)
                if metrics[monitor] > best_value:
                    best_value = metrics[monitor]
                    result.best_epoch, result.best = epoch, dict(metrics)
                    best_state = copy.deepcopy(model.state_dict())
                    bad = 0
                    if checkpoint is not None:
                        model.save(checkpoint)
                else:
                    bad += 1
            result.history.append(record)
            if progress:
                shown = ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds"))
                tqdm.write(f"{type(model).__name__} epoch {epoch}: {shown} ({seconds:.1f}s)")
            if valid is not None and bad >= patience:
                result.stopped_early = True
                break
            if out_of_time:
                break
    except KeyboardInterrupt:
        result.interrupted = True
        if progress:
            tqdm.write(f"{type(model).__name__}: interrupted, keeping the best model so far")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result
