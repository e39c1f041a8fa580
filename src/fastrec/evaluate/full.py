"""Full-ranking evaluation: every test user's scores over the whole catalog, in blocks of users.

For each block: ``score_fn(users) -> [B, n_items]`` scores, the users' training items (from the ``train`` CSR) set to
-inf, top-K by ``torch.topk``, the test items' positions resolved with the tie rule below, and every requested metric
at every requested K computed from one hit matrix. Memory is bounded by the block: one ``[block_size, n_items]``
score matrix plus O(block_size * K) more.

Ties (deterministic, independent of item order and of ``torch.topk``'s internal order):

- ``ties="pessimistic"`` (default): a relevant item tied in score with irrelevant items is ranked after all of them,
  so a model that scores everything equal gets ~0, never a lucky hit from item-id order. Among tied relevant items,
  lower gains are placed first (no effect with binary relevance).
- ``ties="optimistic"``: the reverse bound (relevant items before tied irrelevant ones, higher gains first).

Exactly: the 0-based rank of relevant item j of a user is
``#{candidates i: s_i > s_j} + #{irrelevant candidates i: s_i = s_j} + (its position among tied relevant items)``
(pessimistic; the middle term is dropped for optimistic). It is computed from the top-K values plus, only for rows
where a relevant item sits exactly at the K-th score, one count of that score over the row.

NaN scores among a user's candidates raise ``ValueError`` (scores of excluded items are overwritten, never read).

Conventions: candidates are all items except the user's ``train`` items; test items that are also train items (or that
the model scores -inf) cannot be ranked and are dropped from the relevant set (counted in ``n_relevant_excluded``).
Users with no remaining test item are skipped and counted in ``n_skipped``; the means are over evaluated users.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from fastrec.evaluate._common import (
    Progress,
    RankingResult,
    as_csr,
    check_ks,
    check_metrics,
    check_ties,
    check_users,
)
from fastrec.metrics import ranking as rk

__all__ = ["full_ranking", "score_block", "topk_hits"]

FULL_METRICS = rk.RANKING_METRICS + ("coverage",)


def score_block(score_fn: Callable[[Tensor], Tensor], users: np.ndarray, n_items: int, copy: bool = False) -> Tensor:
    """Calls ``score_fn`` on a block of users and checks the result: shape ``[B, n_items]``, floating point.

    The returned tensor may be modified in place by the caller: views (and tensors inside a larger storage) and
    numpy results are copied, and so is everything with ``copy=True``; a fresh full-size tensor is used as is.
    """
    out = score_fn(torch.from_numpy(np.ascontiguousarray(users, dtype=np.int64)))
    if isinstance(out, np.ndarray):
        out = torch.tensor(out)
    if not isinstance(out, Tensor):
        raise TypeError(f"score_fn: expected a tensor, got {type(out).__name__}")
    if out.shape != (len(users), n_items):
        raise ValueError(f"score_fn: expected scores of shape ({len(users)}, {n_items}), got {tuple(out.shape)}")
    # a view, or a tensor inside a larger storage, belongs to someone else: copy before masking in place
    shared = (out._base is not None or not out.is_contiguous()
              or out.untyped_storage().nbytes() != out.numel() * out.element_size())
    out = out.detach()
    if not out.is_floating_point() or out.dtype in (torch.float16, torch.bfloat16):
        out = out.to(torch.float32)  # integer scores (counts) and half types: ranked in float32
    elif shared or copy:
        out = out.clone(memory_format=torch.contiguous_format)
    return out


def _row_count_equal(rows: Tensor, value: Tensor) -> Tensor:
    """Per row, how many entries equal ``value[row]`` (numpy's count_nonzero is ~3x faster than torch's bool sum)."""
    eq = rows == value[:, None]
    if eq.device.type == "cpu":
        return torch.from_numpy(np.count_nonzero(eq.numpy(), axis=1).astype(np.int64))
    return eq.sum(dim=1)


def _csr_rows(m: sp.csr_matrix, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row-in-block, column, value) of the given rows of a CSR matrix."""
    if users.size and users[-1] - users[0] == users.size - 1 and (np.diff(users) == 1).all():
        lo, hi = m.indptr[users[0]], m.indptr[users[-1] + 1]
        counts = np.diff(m.indptr[users[0] : users[-1] + 2])
        cols, vals = m.indices[lo:hi], m.data[lo:hi]
    else:
        sub = m[users]
        counts = np.diff(sub.indptr)
        cols, vals = sub.indices, sub.data
    rows = np.repeat(np.arange(users.size, dtype=np.int64), counts)
    return rows, cols.astype(np.int64, copy=False), vals


def topk_hits(
    scores: Tensor,
    rel_rows: np.ndarray,
    rel_items: np.ndarray,
    rel_gains: np.ndarray,
    k: int,
    ties: str = "pessimistic",
) -> tuple[Tensor, Tensor, np.ndarray]:
    """Hit matrix of one block with ties resolved (see the module docstring).

    ``scores``: ``[B, n_items]`` with excluded items already at -inf. ``rel_*``: the relevant (row, item, gain)
    triples. Returns ``(hits [B, k] float64, topk item ids [B, k], rankable mask over the triples)``.
    """
    b = scores.shape[0]
    vals, idx = torch.topk(scores, k, dim=1, largest=True, sorted=True)
    # torch.topk ranks NaN above every number, so a row holding NaN among its candidates shows it in column 0:
    # this checks the whole block for the price of [B] comparisons
    nan_rows = torch.isnan(vals[:, 0])
    if bool(nan_rows.any()):
        raise ValueError(f"scores: score_fn returned NaN for {int(nan_rows.sum())} of {b} users in this block "
                         f"(block row {int(nan_rows.nonzero()[0])})")
    hits = torch.zeros(b, k, dtype=torch.float64)
    dev = scores.device
    rows_t = torch.from_numpy(rel_rows).to(dev)
    s = scores[rows_t, torch.from_numpy(rel_items).to(dev)]
    rankable = (s > -torch.inf).cpu().numpy()
    thresh = vals[:, -1]
    cand = (s >= thresh[rows_t]) & (s > -torch.inf)
    cand_np = cand.cpu().numpy()
    if not cand_np.any():
        return hits, idx.cpu(), rankable
    c_rows_t = rows_t[cand]
    c_s = s[cand]
    vrow = vals[c_rows_t]
    n_gt = (vrow > c_s[:, None]).sum(dim=1)
    n_eq = (vrow == c_s[:, None]).sum(dim=1)
    at_t = c_s == thresh[c_rows_t]
    if ties == "pessimistic" and bool(at_t.any()):
        # a tie group at the K-th score may extend beyond the top K: count it over the whole row
        rows_at = torch.unique(c_rows_t[at_t])
        full_eq = torch.zeros(b, dtype=n_eq.dtype, device=dev)
        sub = scores if rows_at.numel() == b else scores[rows_at]
        counts = _row_count_equal(sub, thresh if rows_at.numel() == b else thresh[rows_at]).to(dev)
        full_eq[rows_at] = counts if rows_at.numel() != b else counts[rows_at]
        n_eq = torch.where(at_t, full_eq[c_rows_t], n_eq)
    c_rows = rel_rows[cand_np]
    c_gain = rel_gains[cand_np].astype(np.float64)
    c_items = rel_items[cand_np]
    c_s_np = c_s.cpu().numpy()
    # position of each relevant item among the relevant items tied with it (same row, same score)
    gain_key = c_gain if ties == "pessimistic" else -c_gain
    order = np.lexsort((c_items, gain_key, c_s_np, c_rows))
    r_o, s_o = c_rows[order], c_s_np[order]
    new = np.concatenate([[True], (r_o[1:] != r_o[:-1]) | (s_o[1:] != s_o[:-1])])
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    pos_o = np.arange(order.size) - starts[group]
    size_o = np.diff(np.append(starts, order.size))[group]
    pos = np.empty_like(pos_o)
    pos[order] = pos_o
    r_eq = np.empty_like(size_o)
    r_eq[order] = size_o
    rank = n_gt.cpu().numpy() + pos
    if ties == "pessimistic":
        rank = rank + (n_eq.cpu().numpy() - r_eq)
    inside = rank < k
    hits[torch.from_numpy(c_rows[inside]), torch.from_numpy(rank[inside].astype(np.int64))] = torch.from_numpy(
        c_gain[inside]
    )
    return hits, idx.cpu(), rankable


def _ideal_gains(rows: np.ndarray, gains: np.ndarray, b: int, k: int) -> Tensor:
    """[b, k] relevant gains per row sorted in decreasing order, zero-padded."""
    order = np.lexsort((-gains, rows))
    r_o = rows[order]
    starts = np.searchsorted(r_o, np.arange(b))
    pos = np.arange(order.size) - starts[r_o]
    keep = pos < k
    ideal = torch.zeros(b, k, dtype=torch.float64)
    ideal[torch.from_numpy(r_o[keep]), torch.from_numpy(pos[keep])] = torch.from_numpy(
        gains[order][keep].astype(np.float64)
    )
    return ideal


def per_user_metrics(
    hits: Tensor,
    n_relevant: Tensor,
    ks: Sequence[int],
    metrics: Sequence[str],
    ideal: Tensor | None = None,
    recall_denominator: str = "relevant",
) -> dict[str, Tensor]:
    """``{"name@k": per-user values}`` for every ranking metric and cutoff, from one hit matrix of width max(ks)."""
    out: dict[str, Tensor] = {}
    for k in ks:
        h = hits[:, :k]
        for m in metrics:
            if m == "hr":
                v = rk.hit_rate(h)
            elif m == "recall":
                v = rk.recall(h, n_relevant, recall_denominator)
            elif m == "precision":
                v = rk.precision(h)
            elif m == "ndcg":
                v = rk.ndcg(h, ideal=ideal) if ideal is not None else rk.ndcg(h, n_relevant=n_relevant)
            elif m == "mrr":
                v = rk.mrr(h)
            elif m == "map":
                v = rk.average_precision(h, n_relevant)
            else:
                continue
            out[f"{m}@{k}"] = v
    return out


def full_ranking(
    score_fn: Callable[[Tensor], Tensor],
    test,
    train=None,
    *,
    ks: int | Sequence[int] = (20,),
    metrics: str | Sequence[str] = ("recall", "ndcg"),
    users=None,
    block_size: int = 1024,
    ties: str = "pessimistic",
    recall_denominator: str = "relevant",
    graded: bool = False,
    return_per_user: bool = False,
    progress: bool = False,
    copy_scores: bool = False,
) -> RankingResult:
    """Full-ranking metrics of a scoring function over all items (see the module docstring for the rules).

    Args:
        score_fn: ``users (int64 [B]) -> scores [B, n_items]`` (a tensor; higher is better; NaN raises). For a
            pointwise ``(users, items) -> scores`` model wrap it with :func:`fastrec.evaluate.full_scorer`.
        test: user x item CSR (scipy sparse or an object with ``to_scipy()``) of held-out relevant items; with
            ``graded=True`` its values are the gains, otherwise any stored entry counts as relevance 1.
        train: CSR of the same shape whose items are excluded from each user's candidates (None: exclude nothing).
        ks: cutoff(s) K, each in [1, n_items].
        metrics: any of ``hr, recall, precision, ndcg, mrr, map`` (reported per K as ``"name@K"``) and ``coverage``
            (catalog coverage of the evaluated users' top-K lists, ``"coverage@K"``).
        users: user ids to evaluate (default: every user with a test item). Ids outside the matrix raise.
        block_size: users scored at once; peak memory ~ block_size * n_items * 4 bytes (float32 scores).
        ties: ``"pessimistic"`` or ``"optimistic"``.
        recall_denominator: ``"relevant"`` (|test items|) or ``"min_k"`` (min(K, |test items|)).
        graded: use the test values as graded gains (NDCG); other metrics treat any positive gain as relevant.
        return_per_user: keep per-user values (``result.per_user``, aligned with ``result.users``).
        progress: print a progress line on stderr.
        copy_scores: copy every score block before masking. Not needed for fresh results (a matmul) or views
            (always copied); set it if score_fn returns a whole tensor that it keeps and reuses.
    """
    t0 = time.perf_counter()
    test = as_csr(test, "test")
    n_users, n_items = test.shape
    if train is not None:
        train = as_csr(train, "train")
        if train.shape != test.shape:
            raise ValueError(f"train: shape {train.shape} differs from test's {test.shape}")
    ks = check_ks(ks, n_items)
    metrics = check_metrics(metrics, FULL_METRICS)
    ties = check_ties(ties, ("pessimistic", "optimistic"))
    if recall_denominator not in ("relevant", "min_k"):
        raise ValueError(f"recall_denominator: expected 'relevant' or 'min_k', got {recall_denominator!r}")
    if block_size < 1:
        raise ValueError(f"block_size: must be >= 1, got {block_size}")
    if graded and test.nnz and (test.data < 0).any():
        raise ValueError("test: graded gains must be non-negative")
    users = np.arange(n_users, dtype=np.int64) if users is None else check_users(users, n_users)
    has_test = np.diff(test.indptr)[users] > 0
    n_skipped = int((~has_test).sum())
    todo = users[has_test]
    if todo.size == 0:
        raise ValueError(f"test: none of the {users.size} requested users has a test item")
    kmax = max(ks)
    rank_metrics = [m for m in metrics if m != "coverage"]
    sums: dict[str, float] = {}
    kept: dict[str, list[np.ndarray]] = {}
    kept_users: list[np.ndarray] = []
    covered = {k: np.zeros(n_items, dtype=bool) for k in ks} if "coverage" in metrics else {}
    n_eval = n_excluded = 0
    bar = Progress(todo.size, "full ranking", progress)
    with torch.no_grad():
        for start in range(0, todo.size, block_size):
            ub = todo[start : start + block_size]
            b = ub.size
            scores = score_block(score_fn, ub, n_items, copy_scores)
            if train is not None:
                tr_rows, tr_cols, _ = _csr_rows(train, ub)
                if tr_rows.size:
                    dev = scores.device
                    scores[torch.from_numpy(tr_rows).to(dev), torch.from_numpy(tr_cols).to(dev)] = -torch.inf
            r_rows, r_items, r_vals = _csr_rows(test, ub)
            r_gains = r_vals.astype(np.float64) if graded else np.ones(r_rows.size)
            if graded:  # zero gains are not relevant
                pos_gain = r_gains > 0
                r_rows, r_items, r_gains = r_rows[pos_gain], r_items[pos_gain], r_gains[pos_gain]
            hits, top_ids, rankable = topk_hits(scores, r_rows, r_items, r_gains, kmax, ties)
            n_excluded += int((~rankable).sum())
            r_rows_k, r_gains_k = r_rows[rankable], r_gains[rankable]
            n_rel_np = np.bincount(r_rows_k, minlength=b)
            ok = n_rel_np > 0
            n_skipped += int((~ok).sum())
            if not ok.any():
                bar.update(b)
                continue
            ok_t = torch.from_numpy(ok)
            ideal = _ideal_gains(r_rows_k, r_gains_k, b, kmax)[ok_t] if graded else None
            values = per_user_metrics(hits[ok_t], torch.from_numpy(n_rel_np[ok]), ks, rank_metrics, ideal,
                                      recall_denominator)
            for name, v in values.items():
                sums[name] = sums.get(name, 0.0) + float(v.sum())
                if return_per_user:
                    kept.setdefault(name, []).append(v.numpy())
            if covered:
                ids = top_ids[ok_t]
                for k in ks:
                    sel = ids[:, :k]
                    covered[k][sel[sel >= 0].numpy()] = True  # all ids valid: K <= n_items
            if return_per_user:
                kept_users.append(ub[ok])
            n_eval += int(ok.sum())
            bar.update(b)
    if n_eval == 0:
        raise ValueError("test: no requested user has a rankable test item (all were excluded or scored -inf)")
    means = {}
    for k in ks:
        for m in metrics:
            name = f"{m}@{k}"
            means[name] = float(covered[k].mean()) if m == "coverage" else sums[name] / n_eval
    return RankingResult(
        metrics=means,
        n_users=n_eval,
        n_skipped=n_skipped,
        n_relevant_excluded=n_excluded,
        seconds=time.perf_counter() - t0,
        protocol="full ranking",
        settings={"ks": list(ks), "ties": ties, "recall_denominator": recall_denominator, "graded": graded,
                  "exclude_train": train is not None, "n_items": n_items},
        per_user={k: np.concatenate(v) for k, v in kept.items()} if return_per_user else None,
        users=np.concatenate(kept_users) if return_per_user else None,
    )
