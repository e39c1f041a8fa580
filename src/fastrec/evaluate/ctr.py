"""Pointwise (CTR) evaluation over a data loader: AUC, log loss and, with group ids, group AUC."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from fastrec.evaluate._common import RankingResult, check_metrics
from fastrec.metrics import ctr as m_ctr

__all__ = ["evaluate_ctr"]

CTR_METRICS = ("auc", "logloss", "gauc")


def _np(x) -> np.ndarray:
    return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).reshape(-1)


def evaluate_ctr(
    predict: Callable[..., torch.Tensor],
    loader: Iterable,
    *,
    metrics: str | Sequence[str] = ("auc", "logloss"),
    from_logits: bool = True,
) -> RankingResult:
    """Runs ``predict(inputs)`` over every batch of ``loader`` and computes CTR metrics on all predictions at once.

    Batches are ``(inputs, labels)`` or ``(inputs, labels, groups)`` tuples (groups: the user id of each row, needed
    for ``gauc``); ``inputs`` is passed to ``predict`` as is (a tuple is unpacked into positional arguments).
    ``predict`` returns logits (``from_logits=True``) or probabilities, one per row. AUC ties count 1/2; log loss
    uses the stable log-sigmoid for logits; GAUC weights users by impressions and skips single-class users
    (reported in ``settings["gauc_skipped"]``). ``n_users`` of the result is the number of rows.
    """
    t0 = time.perf_counter()
    metrics = check_metrics(metrics, CTR_METRICS)
    preds, labels, groups = [], [], []
    with torch.no_grad():
        for batch in loader:
            if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
                raise ValueError("loader: batches must be (inputs, labels) or (inputs, labels, groups) tuples")
            inputs, y = batch[0], batch[1]
            out = predict(*inputs) if isinstance(inputs, tuple) else predict(inputs)
            p, yy = _np(out), _np(y)
            if p.size != yy.size:
                raise ValueError(f"predict: returned {p.size} predictions for a batch of {yy.size} labels")
            preds.append(p)
            labels.append(yy)
            if len(batch) == 3:
                groups.append(_np(batch[2]))
            elif "gauc" in metrics:
                raise ValueError("metrics: 'gauc' needs (inputs, labels, groups) batches")
    if not preds:
        raise ValueError("loader: yielded no batches (empty test set)")
    p, y = np.concatenate(preds), np.concatenate(labels)
    probs = 1.0 / (1.0 + np.exp(-p.astype(np.float64))) if from_logits else p
    out: dict[str, float] = {}
    settings: dict = {"from_logits": from_logits}
    if "auc" in metrics:
        out["auc"] = m_ctr.auc(y, p)  # AUC is invariant to the monotone sigmoid
    if "logloss" in metrics:
        out["logloss"] = m_ctr.log_loss(y, p, from_logits=from_logits)
    if "gauc" in metrics:
        g = m_ctr.group_auc(np.concatenate(groups), y, probs)
        out["gauc"] = g.value
        settings.update(gauc_groups=g.n_groups, gauc_skipped=g.n_skipped)
    return RankingResult(metrics=out, n_users=int(y.size), seconds=time.perf_counter() - t0,
                         protocol="pointwise CTR", settings=settings)
