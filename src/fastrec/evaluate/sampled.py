"""Sampled ranking: each test case ranks its target item against its own set of negatives.

The published leave-one-out protocols (NCF, SASRec, S3-Rec, BERT4Rec) rank the held-out item among 99 (or 100) items
the user never interacted with and report HR@K and NDCG@K. Here the candidates of case c are its target plus the row
``negatives[c]``; the rank of the target is derived only from *counts* (how many negatives score strictly higher,
how many score equal), so where the target sits in a candidate list can never matter:

- ``ties="pessimistic"`` (default): rank = #{neg > target} + #{neg == target} (ties counted against the target);
- ``ties="optimistic"``:  rank = #{neg > target};
- ``ties="average"``: the metric's expected value when the target's position among its tied negatives is uniformly
  random, i.e. rank uniform over [#{neg > t}, #{neg > t} + #{neg == t}] (deterministic; equals the mean over all
  orderings of the ties).

With a single target: HR@K = Recall@K = 1[rank < K], NDCG@K = 1[rank < K] / log2(rank + 2), MRR@K = 1[rank < K] /
(rank + 1), Precision@K = HR@K / K, MAP@K = MRR@K, and the per-case AUC = (#{neg < t} + w #{neg == t}) / n_neg with
w = 0, 1, 1/2 for the three tie rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from fastrec.evaluate._common import Progress, RankingResult, check_ks, check_metrics, check_ties

__all__ = ["sampled_ranking", "target_rank_counts", "metrics_from_counts"]

SAMPLED_METRICS = ("hr", "recall", "precision", "ndcg", "mrr", "map", "auc")


def _as_int_array(x, name: str, ndim: int) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x)
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name}: expected integer ids, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def target_rank_counts(scores: Tensor, target_col: Tensor | int = 0) -> tuple[Tensor, Tensor]:
    """From ``[B, C]`` candidate scores whose target sits in column ``target_col`` (an int or a ``[B]`` tensor):
    (#other candidates scoring higher, #scoring equal). Only counts are used, so the target's column cannot matter."""
    b, c = scores.shape
    col = torch.as_tensor(target_col, dtype=torch.long, device=scores.device).expand(b)
    t = scores.gather(1, col[:, None])
    others = torch.ones(b, c, dtype=torch.bool, device=scores.device)
    others[torch.arange(b, device=scores.device), col] = False
    return ((scores > t) & others).sum(dim=1), ((scores == t) & others).sum(dim=1)


def metrics_from_counts(
    n_greater: np.ndarray,
    n_equal: np.ndarray,
    n_neg: int,
    ks: Sequence[int],
    metrics: Sequence[str],
    ties: str = "pessimistic",
) -> dict[str, np.ndarray]:
    """Per-case metric values from the rank counts, under the given tie rule (see the module docstring)."""
    n_greater = np.asarray(n_greater, dtype=np.int64)
    n_equal = np.asarray(n_equal, dtype=np.int64)
    if ties == "pessimistic":
        lo = hi = n_greater + n_equal
    elif ties == "optimistic":
        lo = hi = n_greater
    else:
        lo, hi = n_greater, n_greater + n_equal
    count = (hi - lo + 1).astype(np.float64)
    n_pos = n_neg + 1
    r = np.arange(n_pos, dtype=np.float64)

    def expect(per_rank: np.ndarray) -> np.ndarray:  # mean of per_rank[r] over r in [lo, hi]
        cum = np.concatenate([[0.0], np.cumsum(per_rank)])
        return (cum[hi + 1] - cum[lo]) / count

    out: dict[str, np.ndarray] = {}
    for k in ks:
        inside = (r < k).astype(np.float64)
        hr = expect(inside)
        for m in metrics:
            if m in ("hr", "recall"):
                out[f"{m}@{k}"] = hr
            elif m == "precision":
                out[f"{m}@{k}"] = hr / k
            elif m == "ndcg":
                out[f"{m}@{k}"] = expect(inside / np.log2(r + 2.0))
            elif m in ("mrr", "map"):
                out[f"{m}@{k}"] = expect(inside / (r + 1.0))
    if "auc" in metrics:
        w = {"pessimistic": 0.0, "optimistic": 1.0, "average": 0.5}[ties]
        out["auc"] = (n_neg - n_greater - n_equal + w * n_equal) / n_neg
    return out


def sampled_ranking(
    score_fn: Callable[[Tensor, Tensor], Tensor],
    users,
    targets,
    negatives,
    *,
    ks: int | Sequence[int] = (10,),
    metrics: str | Sequence[str] = ("hr", "ndcg"),
    ties: str = "pessimistic",
    n_items: int | None = None,
    n_users: int | None = None,
    block_size: int = 4096,
    return_per_user: bool = False,
    progress: bool = False,
) -> RankingResult:
    """Sampled-ranking metrics: each case's target ranked against its negatives (rules in the module docstring).

    Args:
        score_fn: ``(users int64 [B], items int64 [B, C]) -> scores [B, C]``; for a model that scores all items
            (``users -> [B, n_items]``) wrap it with :func:`fastrec.evaluate.pair_scorer`.
        users: ``[n]`` user id of each test case.
        targets: ``[n]`` held-out item of each case; a negative id means "no test item": the case is skipped and
            counted in ``n_skipped``.
        negatives: ``[n, n_neg]`` negative items of each case: the 99-negative files of published protocols, or
            rows drawn by the data layer (``fastrec.data.evaluation_negatives([train, valid, test], 99, users=...)``
            draws, per user and seed, items the user never interacted with). A target among its own negatives raises.
        ks: cutoff(s), each in [1, 1 + n_neg].
        metrics: any of ``hr, recall, precision, ndcg, mrr, map`` (``"name@K"``) and ``auc``.
        ties: ``"pessimistic"``, ``"optimistic"`` or ``"average"``.
        n_items: if given, every item id must lie in [0, n_items).
        n_users: if given, every user id must lie in [0, n_users) (unknown users raise).
        block_size: cases scored per call of score_fn.
    """
    t0 = time.perf_counter()
    users = _as_int_array(users, "users", 1)
    targets = _as_int_array(targets, "targets", 1)
    negatives = _as_int_array(negatives, "negatives", 2)
    if not (users.size == targets.size == negatives.shape[0]):
        raise ValueError(f"users, targets and negatives must have one row per test case: {users.size}, "
                         f"{targets.size}, {negatives.shape[0]}")
    if users.size == 0:
        raise ValueError("targets: empty test set")
    n_neg = negatives.shape[1]
    if n_neg < 1:
        raise ValueError("negatives: each case needs at least one negative")
    ks = check_ks(ks, n_neg + 1)
    metrics = check_metrics(metrics, SAMPLED_METRICS)
    ties = check_ties(ties)
    if (users < 0).any():
        raise ValueError(f"users: {int((users < 0).sum())} negative user id(s)")
    if n_users is not None and users.size and users.max() >= n_users:
        raise ValueError(f"users: id {int(users.max())} out of range for n_users={n_users}")
    if (negatives < 0).any():
        raise ValueError(f"negatives: {int((negatives < 0).sum())} negative item id(s)")
    if n_items is not None:
        for name, a in (("targets", targets), ("negatives", negatives)):
            if a.size and a.max() >= n_items:
                raise ValueError(f"{name}: item id {int(a.max())} out of range for n_items={n_items}")
    has = targets >= 0
    n_skipped = int((~has).sum())
    users, targets, negatives = users[has], targets[has], negatives[has]
    if users.size == 0:
        raise ValueError("targets: no test case has a target (all ids are negative)")
    clash = (negatives == targets[:, None]).any(axis=1)
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        raise ValueError(f"negatives: {int(clash.sum())} case(s) list their own target among the negatives, "
                         f"e.g. user {int(users[i])} target {int(targets[i])}")
    candidates = np.concatenate([targets[:, None], negatives], axis=1)
    n_gt = np.empty(users.size, dtype=np.int64)
    n_eq = np.empty(users.size, dtype=np.int64)
    bar = Progress(users.size, "sampled ranking", progress)
    with torch.no_grad():
        for start in range(0, users.size, block_size):
            sl = slice(start, start + block_size)
            cu = torch.from_numpy(np.ascontiguousarray(users[sl]))
            ci = torch.from_numpy(np.ascontiguousarray(candidates[sl]))
            s = score_fn(cu, ci)
            if isinstance(s, np.ndarray):
                s = torch.from_numpy(s)
            if not isinstance(s, Tensor) or s.shape != ci.shape:
                raise ValueError(f"score_fn: expected scores of shape {tuple(ci.shape)}, got "
                                 f"{tuple(getattr(s, 'shape', ()))}")
            if bool(torch.isnan(s).any()):
                raise ValueError(f"scores: score_fn returned NaN in block starting at case {start}")
            g, e = target_rank_counts(s.detach())
            n_gt[sl], n_eq[sl] = g.cpu().numpy(), e.cpu().numpy()
            bar.update(cu.numel())
    values = metrics_from_counts(n_gt, n_eq, n_neg, ks, metrics, ties)
    names = [f"{m}@{k}" for k in ks for m in metrics if m != "auc"] + (["auc"] if "auc" in metrics else [])
    return RankingResult(
        metrics={name: float(values[name].mean()) for name in names},
        n_users=int(users.size),
        n_skipped=n_skipped,
        seconds=time.perf_counter() - t0,
        protocol="sampled ranking",
        settings={"ks": list(ks), "ties": ties, "n_negatives": n_neg},
        per_user={name: values[name] for name in names} if return_per_user else None,
        users=users if return_per_user else None,
    )
