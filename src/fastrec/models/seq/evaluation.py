"""Sequential models under fastrec.evaluate's protocols: each test case is a history and its held-out next item.

- :func:`sampled_evaluator`: the target ranked against fixed negatives (the 99-negative protocol of SASRec / S3-Rec /
  BERT4Rec), through :func:`fastrec.evaluate.sampled_ranking`;
- :func:`full_evaluator`: the target ranked against every item, optionally excluding items (a user's history),
  through :func:`fastrec.evaluate.full_ranking`;
- :func:`leave_one_out_cases`: the valid and test cases of a :func:`fastrec.data.leave_one_out` split.

Each evaluator is a ``model -> {metric: value}`` function: the ``valid`` argument of ``fit``, or called once on test.
The cases' ``users`` go to the models with user embeddings (Caser); the others read the histories only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fastrec.data import Interactions
from fastrec.evaluate import full_ranking, sampled_ranking
from fastrec.models.seq._sequences import pad_left, sequences_of

__all__ = ["Cases", "full_evaluator", "leave_one_out_cases", "sampled_evaluator"]


@dataclass
class Cases:
    """Test cases: case c predicts ``targets[c]`` from history c of the jagged ``(offsets, items)``; ``users``
    (optional) names the user of each case."""

    offsets: np.ndarray
    items: np.ndarray
    targets: np.ndarray
    users: np.ndarray | None = None

    def __len__(self) -> int:
        return self.targets.size

    def subset(self, rows: np.ndarray) -> Cases:
        lengths = np.diff(self.offsets)[rows]
        offsets = np.zeros(rows.size + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        src = np.repeat(self.offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Cases(offsets, self.items[src], self.targets[rows],
                     None if self.users is None else self.users[rows])


def leave_one_out_cases(train: Interactions, valid: Interactions, test: Interactions) -> tuple[Cases, Cases]:
    """(valid cases, test cases) with the users of each, in user id order: valid predicts the valid item from
    train, test the test item from train + valid. Users without a held-out item are left out."""
    out = []
    for history, target in (((train,), valid), ((train, valid), test)):
        offsets, items = sequences_of(*history)
        has = np.diff(target.indptr) == 1
        if (np.diff(target.indptr) > 1).any():
            raise ValueError("leave_one_out_cases: a user has more than one held-out item")
        users = np.flatnonzero(has)
        cases = Cases(offsets, items, np.full(offsets.size - 1, -1, np.int64))
        cases.targets[users] = target.indices[target.indptr[users]]
        sub = cases.subset(users)
        sub.users = users
        out.append(sub)
    return out[0], out[1]


def _users(cases: Cases, rows: torch.Tensor) -> np.ndarray | None:
    return None if cases.users is None else cases.users[rows.cpu().numpy()]


def sampled_evaluator(cases: Cases, negatives: Any, *, ks: int | Sequence[int] = 10,
                      metrics: Sequence[str] = ("hr", "ndcg"), ties: str = "pessimistic",
                      block_size: int = 2048) -> Callable[[Any], dict[str, float]]:
    """Ranks each case's target among its row of ``negatives`` [len(cases), n_neg] with
    :func:`fastrec.evaluate.sampled_ranking`."""
    negatives = np.asarray(negatives)
    if negatives.ndim != 2 or negatives.shape[0] != len(cases):
        raise ValueError(f"negatives must have shape ({len(cases)}, n_neg), got {negatives.shape}")

    def evaluate(model: Any) -> dict[str, float]:
        padded = torch.from_numpy(pad_left(cases.offsets, cases.items, model.max_len))
        res = sampled_ranking(lambda c, items: model.score(padded[c], items, users=_users(cases, c)),
                              np.arange(len(cases)), cases.targets, negatives, ks=ks, metrics=metrics, ties=ties,
                              n_items=model.n_items, block_size=block_size)
        return dict(res.metrics)

    return evaluate


def full_evaluator(cases: Cases, *, exclude_history: bool = True, ks: int | Sequence[int] = (10, 20),
                   metrics: Sequence[str] = ("hr", "ndcg", "mrr"), ties: str = "pessimistic",
                   block_size: int = 1024) -> Callable[[Any], dict[str, float]]:
    """Ranks each case's target among all items with :func:`fastrec.evaluate.full_ranking`; with
    ``exclude_history`` the items of the case's history are not candidates (the usual rule for user histories;
    session benchmarks such as SR-GNN's Diginetica keep them)."""
    n = len(cases)

    def evaluate(model: Any) -> dict[str, float]:
        padded = torch.from_numpy(pad_left(cases.offsets, cases.items, model.max_len))
        test = sp.csr_matrix((np.ones(n, np.float32), cases.targets, np.arange(n + 1)), shape=(n, model.n_items))
        train = None
        if exclude_history:
            train = sp.csr_matrix((np.ones(cases.items.size, np.float32), cases.items, cases.offsets),
                                  shape=(n, model.n_items))
        res = full_ranking(lambda c: model.full_scores(padded[c], users=_users(cases, c)), test, train, ks=ks,
                           metrics=metrics, ties=ties, block_size=block_size)
        return dict(res.metrics)

    return evaluate
