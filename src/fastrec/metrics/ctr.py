"""Pointwise metrics: AUC, group AUC, log loss (CTR) and RMSE, MAE (rating prediction).

Inputs are 1-D numpy arrays or tensors (any float/int dtype; computed in float64). NaN in predictions or labels raises
``ValueError`` naming the argument; so do empty inputs and mismatched lengths.

- AUC      = P(score of a random positive > score of a random negative) + 0.5 * P(equal)
           = (sum of the average ranks of the positives - P (P + 1) / 2) / (P N)   (Mann-Whitney U; tied scores get
             their average rank, so ties count 1/2: the same value as ``sklearn.metrics.roc_auc_score``)
- GAUC     = sum_u w_u AUC_u / sum_u w_u over the groups (users) that have both a positive and a negative label;
             ``w_u`` = the number of the group's impressions (DIN paper, the default) or 1 (``weighting="uniform"``).
             Groups with a single class are skipped and counted.
- LogLoss  = -mean(y log p + (1 - y) log(1 - p)), p clipped to [eps, 1 - eps] (eps = 1e-7 by default); with
             ``from_logits=True`` computed from logits with a stable log-sigmoid (no clipping).
- RMSE     = sqrt(mean((y - yhat)^2)),  MAE = mean(|y - yhat|).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

__all__ = ["GroupAUC", "auc", "group_auc", "log_loss", "mae", "rmse"]


def _as_1d(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 1:
        a = a.reshape(-1) if a.ndim == 2 and 1 in a.shape else a
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: empty input")
    a = a.astype(np.float64, copy=False)
    if np.isnan(a).any():
        raise ValueError(f"{name}: contains {int(np.isnan(a).sum())} NaN value(s)")
    return a


def _pair(y_true, y_pred, pred_name: str = "y_score") -> tuple[np.ndarray, np.ndarray]:
    y = _as_1d(y_true, "y_true")
    p = _as_1d(y_pred, pred_name)
    if y.shape != p.shape:
        raise ValueError(f"y_true and {pred_name} differ in length: {y.size} vs {p.size}")
    return y, p


def _binary_labels(y: np.ndarray) -> np.ndarray:
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise ValueError(f"y_true: labels must be 0 or 1, found {np.unique(y[bad])[:5].tolist()}")
    return y


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of s in increasing order, ties sharing their average rank (scipy.stats.rankdata 'average')."""
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    boundary = np.concatenate([[True], sorted_s[1:] != sorted_s[:-1], [True]])
    starts = np.flatnonzero(boundary)
    group_avg = (starts[:-1] + starts[1:] + 1) / 2.0  # mean of 1-based positions start+1 .. end
    group_of = np.cumsum(boundary[:-1]) - 1
    ranks = np.empty_like(s)
    ranks[order] = group_avg[group_of]
    return ranks


def auc(y_true, y_score) -> float:
    """ROC AUC by the Mann-Whitney statistic, ties counted 1/2. Raises if only one class is present."""
    y, s = _pair(y_true, y_score)
    _binary_labels(y)
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"y_true: AUC needs both classes, got {int(n_pos)} positives and {int(n_neg)} negatives")
    ranks = _average_ranks(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True)
class GroupAUC:
    """Group AUC with the counts behind it."""

    value: float
    n_groups: int  # groups averaged over
    n_skipped: int  # groups with a single class (AUC undefined), left out


def group_auc(groups, y_true, y_score, weighting: Literal["impressions", "uniform"] = "impressions") -> GroupAUC:
    """GAUC: per-group (per-user) AUC averaged with weights; single-class groups skipped and counted."""
    y, s = _pair(y_true, y_score)
    _binary_labels(y)
    g = np.asarray(groups.detach().cpu().numpy() if isinstance(groups, torch.Tensor) else groups).reshape(-1)
    if g.shape != y.shape:
        raise ValueError(f"groups and y_true differ in length: {g.size} vs {y.size}")
    if weighting not in ("impressions", "uniform"):
        raise ValueError(f"weighting: expected 'impressions' or 'uniform', got {weighting!r}")
    order = np.lexsort((s, g))  # by group, then score
    g, y, s = g[order], y[order], s[order]
    n = g.size
    new_group = np.concatenate([[True], g[1:] != g[:-1]])
    new_tie = new_group | np.concatenate([[True], s[1:] != s[:-1]])
    group_starts = np.flatnonzero(new_group)
    tie_starts = np.flatnonzero(new_tie)
    tie_ends = np.append(tie_starts[1:], n)
    tie_of = np.cumsum(new_tie) - 1
    group_of = np.cumsum(new_group) - 1
    # average 1-based rank of each element within its group, ties sharing the mean of their positions
    ranks = (tie_starts[tie_of] + tie_ends[tie_of] + 1) / 2.0 - group_starts[group_of]
    sizes = np.diff(np.append(group_starts, n)).astype(np.float64)
    n_pos = np.add.reduceat(y, group_starts)
    pos_rank_sum = np.add.reduceat(ranks * y, group_starts)
    n_neg = sizes - n_pos
    ok = (n_pos > 0) & (n_neg > 0)
    used, skipped = int(ok.sum()), int((~ok).sum())
    if used == 0:
        raise ValueError("y_true: no group has both a positive and a negative label; group AUC is undefined")
    values = (pos_rank_sum[ok] - n_pos[ok] * (n_pos[ok] + 1) / 2.0) / (n_pos[ok] * n_neg[ok])
    w = sizes[ok] if weighting == "impressions" else np.ones(used)
    total, weight = float((w * values).sum()), float(w.sum())
    return GroupAUC(float(total / weight), used, skipped)


def log_loss(y_true, y_pred, *, from_logits: bool = False, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy. ``y_pred``: probabilities (clipped to [eps, 1-eps]) or logits."""
    y, p = _pair(y_true, y_pred, "y_pred")
    _binary_labels(y)
    if from_logits:
        # -log sigmoid(x) = softplus(-x), -log(1 - sigmoid(x)) = softplus(x)
        return float(np.mean(y * np.logaddexp(0.0, -p) + (1 - y) * np.logaddexp(0.0, p)))
    if ((p < 0) | (p > 1)).any():
        raise ValueError("y_pred: probabilities must lie in [0, 1] (pass from_logits=True for logits)")
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error."""
    y, p = _pair(y_true, y_pred, "y_pred")
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error."""
    y, p = _pair(y_true, y_pred, "y_pred")
    return float(np.mean(np.abs(y - p)))
