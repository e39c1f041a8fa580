"""Train / validation / test splits. Each is deterministic for a given seed, and every part keeps the full id space
(same ``user_ids`` / ``item_ids``, same shape), so scores and metrics line up across parts.

- :func:`leave_one_out`: per user, the last item by time is test, the second last validation (SASRec / S3-Rec).
- :func:`temporal_split`: one global cut in time (entries at or after the cut are test).
- :func:`random_holdout`: per user, a random fraction of the entries is test (and validation).
- :func:`strong_generalization`: held-out users, each split into a fold-in part and a test part (Mult-VAE, EASE).
- :func:`kfold`: K folds over the rows of a file in file order (Surprise's ``KFold``) for rating prediction.

A split that would leave a user without training data says so: it raises by default, or drops (or keeps) such
users on request, reports them in the result's ``dropped`` field and warns with their number.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from fastrec.data.interactions import Interactions

__all__ = ["Split", "StrongSplit", "kfold", "leave_one_out", "random_holdout", "strong_generalization",
           "temporal_split"]


class Split(NamedTuple):
    """train / valid (None when not asked for) / test, plus the internal ids of users dropped from every part."""

    train: Interactions
    valid: Interactions | None
    test: Interactions
    dropped: np.ndarray


class StrongSplit(NamedTuple):
    """Strong generalization: ``train`` holds the training users' rows; each held-out user's rows are split into a
    fold-in part (the model's input at evaluation) and a test part (the targets). User sets as internal ids."""

    train: Interactions
    valid_fold_in: Interactions
    valid_test: Interactions
    test_fold_in: Interactions
    test_test: Interactions
    train_users: np.ndarray
    valid_users: np.ndarray
    test_users: np.ndarray


def _check_interactions(x: object) -> Interactions:
    if not isinstance(x, Interactions):
        raise TypeError(f"x must be Interactions, got {type(x).__name__}")
    return x


def _ext(x: Interactions, users: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in x.user_ids[users[:limit]])
    return shown + (f", ... ({users.size} in all)" if users.size > limit else "")


def _parts(x: Interactions, part: np.ndarray, with_valid: bool, dropped: np.ndarray) -> Split:
    """Split from per-entry labels 0 train, 1 valid, 2 test, -1 dropped."""
    return Split(x.select(part == 0), x.select(part == 1) if with_valid else None, x.select(part == 2), dropped)


def _handle_short(x: Interactions, part: np.ndarray, short: np.ndarray, policy: str, what: str) -> np.ndarray:
    """Applies the short-user policy in place on ``part``; returns the dropped users."""
    if policy not in ("raise", "train", "drop"):
        raise ValueError(f"short_users must be 'raise', 'train' or 'drop', got {policy!r}")
    users = np.flatnonzero(short)
    if users.size == 0:
        return users
    if policy == "raise":
        raise ValueError(f"{users.size} users would have no training data ({what}): external ids "
                         f"{_ext(x, users)}; pass short_users='drop' to drop them or 'train' to keep them in train "
                         "only")
    entry_short = short[x.rowids()]
    if policy == "train":
        part[entry_short] = 0
        return np.zeros(0, np.int64)
    part[entry_short] = -1
    warnings.warn(f"dropped {users.size} users with {int(entry_short.sum())} entries ({what}): external ids "
                  f"{_ext(x, users)}", stacklevel=3)
    return users


def _rank_from_end(x: Interactions, keys: np.ndarray) -> np.ndarray:
    """Per entry: 0 for the user's last entry by (keys, item id), 1 for the second last, ..."""
    rows = x.rowids()
    order = np.lexsort((x.indices, keys, rows))  # by user, then key, then item id
    pos = np.empty(x.nnz, np.int64)
    pos[order] = np.arange(x.nnz, dtype=np.int64)
    return x.indptr[1:][rows] - 1 - pos


def leave_one_out(
    x: Interactions,
    *,
    n_test: int = 1,
    n_valid: int = 1,
    by: str = "time",
    seed: int = 0,
    short_users: str = "raise",
) -> Split:
    """Per user: the last ``n_test`` entries are test, the ``n_valid`` before them validation, the rest train.

    ``by="time"`` orders a user's entries by timestamp (ties: by item id), ``by="random"`` by a random permutation
    drawn from ``seed``. Users with at most ``n_test + n_valid`` entries would have no training data:
    ``short_users`` = "raise" (default), "train" (all their entries stay in train, none in valid/test) or "drop"."""
    x = _check_interactions(x)
    for name, v in (("n_test", n_test), ("n_valid", n_valid)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    if n_test < 1:
        raise ValueError(f"n_test must be >= 1, got {n_test}")
    if by == "time":
        if x.timestamps is None:
            raise ValueError("leave_one_out(by='time') needs timestamps; load line files with "
                             "positions_as_timestamps=True, or pass by='random'")
        keys = x.timestamps
    elif by == "random":
        keys = np.random.default_rng(seed).random(x.nnz)
    else:
        raise ValueError(f"by must be 'time' or 'random', got {by!r}")
    rank = _rank_from_end(x, keys)
    part = np.where(rank < n_test, 2, np.where(rank < n_test + n_valid, 1, 0)).astype(np.int8)
    short = x.user_degrees() <= n_test + n_valid
    short &= x.user_degrees() > 0
    dropped = _handle_short(x, part, short, short_users, f"at most n_test + n_valid = {n_test + n_valid} entries")
    return _parts(x, part, n_valid > 0, dropped)


def temporal_split(
    x: Interactions,
    *,
    test_fraction: float | None = None,
    valid_fraction: float = 0.0,
    cutoff: int | None = None,
    valid_cutoff: int | None = None,
    cold_users: str = "drop",
) -> Split:
    """One global cut in time: entries with timestamp >= the test cut are test, those in [valid cut, test cut)
    validation, the rest train. Give the cuts as times (``cutoff``, ``valid_cutoff``) or as fractions of the entries
    (``test_fraction``, ``valid_fraction``: the cut is the timestamp at that quantile; entries tied with it go to the
    later part).

    Users with validation or test entries but none in train (cold users): ``cold_users`` = "drop" (default: their
    valid/test entries are removed, reported in ``dropped`` and in a warning), "keep" (kept as cold-start users)
    or "raise"."""
    x = _check_interactions(x)
    if x.timestamps is None:
        raise ValueError("temporal_split needs timestamps")
    if cold_users not in ("drop", "keep", "raise"):
        raise ValueError(f"cold_users must be 'drop', 'keep' or 'raise', got {cold_users!r}")
    if (cutoff is None) == (test_fraction is None):
        raise ValueError("give exactly one of cutoff and test_fraction")
    ts = x.timestamps
    if test_fraction is not None:
        if not 0.0 < test_fraction < 1.0 or not 0.0 <= valid_fraction < 1.0 - test_fraction:
            raise ValueError(f"need 0 < test_fraction < 1 and 0 <= valid_fraction < 1 - test_fraction, got "
                             f"test_fraction={test_fraction!r}, valid_fraction={valid_fraction!r}")
        if x.nnz == 0:
            raise ValueError("empty input: no entries to split")
        srt = np.sort(ts)
        cutoff = int(srt[min(x.nnz - 1, int(np.floor((1.0 - test_fraction) * x.nnz)))])
        valid_cutoff = (int(srt[min(x.nnz - 1, int(np.floor((1.0 - test_fraction - valid_fraction) * x.nnz)))])
                        if valid_fraction > 0 else None)
    if valid_cutoff is not None and valid_cutoff > cutoff:
        raise ValueError(f"valid_cutoff={valid_cutoff} must be <= cutoff={cutoff}")
    part = np.zeros(x.nnz, np.int8)
    if valid_cutoff is not None:
        part[ts >= valid_cutoff] = 1
    part[ts >= cutoff] = 2
    has_train = np.bincount(x.rowids()[part == 0], minlength=x.n_users) > 0
    has_later = np.bincount(x.rowids()[part > 0], minlength=x.n_users) > 0
    cold = has_later & ~has_train
    dropped = np.zeros(0, np.int64)
    if cold.any() and cold_users != "keep":
        users = np.flatnonzero(cold)
        if cold_users == "raise":
            raise ValueError(f"{users.size} users have entries only after the cut (no training data): external ids "
                             f"{_ext(x, users)}; pass cold_users='drop' or 'keep'")
        part[cold[x.rowids()]] = -1
        warnings.warn(f"dropped the later entries of {users.size} users without training data: external ids "
                      f"{_ext(x, users)}", stacklevel=2)
        dropped = users
    return _parts(x, part, valid_cutoff is not None, dropped)


def _holdout_counts(deg: np.ndarray, ratio: float) -> np.ndarray:
    return np.floor(deg * ratio + 0.5).astype(np.int64)


def random_holdout(
    x: Interactions,
    *,
    test_ratio: float = 0.2,
    valid_ratio: float = 0.0,
    seed: int = 0,
    short_users: str = "raise",
) -> Split:
    """Per user, ``round(test_ratio * degree)`` random entries are test and ``round(valid_ratio * degree)``
    validation (round half up); the rest train. Users whose rounded parts would take every entry:
    ``short_users`` = "raise" (default), "train" or "drop"."""
    x = _check_interactions(x)
    if not 0.0 < test_ratio < 1.0 or not 0.0 <= valid_ratio < 1.0 - test_ratio:
        raise ValueError(f"need 0 < test_ratio < 1 and 0 <= valid_ratio < 1 - test_ratio, got "
                         f"test_ratio={test_ratio!r}, valid_ratio={valid_ratio!r}")
    deg = x.user_degrees()
    n_test = _holdout_counts(deg, test_ratio)
    n_valid = _holdout_counts(deg, valid_ratio)
    rank = _rank_from_end(x, np.random.default_rng(seed).random(x.nnz))
    rows = x.rowids()
    part = np.where(rank < n_test[rows], 2, np.where(rank < (n_test + n_valid)[rows], 1, 0)).astype(np.int8)
    short = (n_test + n_valid >= deg) & (deg > 0)
    dropped = _handle_short(x, part, short, short_users, "the held-out parts round to all of their entries")
    return _parts(x, part, valid_ratio > 0, dropped)


def _n_of(name: str, v: int | float, total: int) -> int:
    if isinstance(v, float):
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{name} as a fraction must be in [0, 1), got {v!r}")
        return int(round(v * total))
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"{name} must be a count >= 0 or a fraction, got {v!r}")
    return int(v)


def strong_generalization(
    x: Interactions,
    *,
    n_valid_users: int | float = 0.1,
    n_test_users: int | float = 0.1,
    fold_in: float = 0.8,
    min_heldout_entries: int = 5,
    seed: int = 0,
) -> StrongSplit:
    """Held-out users (Mult-VAE / EASE protocol): users with entries are permuted with ``seed``; the first
    ``n_test_users`` are test users, the next ``n_valid_users`` validation users, the rest training users (counts, or
    fractions of the users with entries). A held-out user with at least ``min_heldout_entries`` entries has a random
    ``1 - fold_in`` of them (rounded half up, at least 1) in its test part and the rest in its fold-in part; one with
    fewer keeps all in fold-in (Mult-VAE's preprocessing does the same)."""
    x = _check_interactions(x)
    if not 0.0 < fold_in < 1.0:
        raise ValueError(f"fold_in must be in (0, 1), got {fold_in!r}")
    active = np.flatnonzero(x.user_degrees() > 0)
    n_te = _n_of("n_test_users", n_test_users, active.size)
    n_va = _n_of("n_valid_users", n_valid_users, active.size)
    if n_te + n_va >= active.size:
        raise ValueError(f"n_test_users + n_valid_users = {n_te + n_va} leaves no training users "
                         f"({active.size} users have entries)")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(active)
    test_users = np.sort(perm[:n_te])
    valid_users = np.sort(perm[n_te:n_te + n_va])
    train_users = np.sort(perm[n_te + n_va:])
    group = np.zeros(x.n_users, np.int8)  # 0 train, 1 valid, 2 test
    group[valid_users] = 1
    group[test_users] = 2
    deg = x.user_degrees()
    n_hold = np.maximum(1, np.floor(deg * (1.0 - fold_in) + 0.5)).astype(np.int64)
    n_hold[deg < min_heldout_entries] = 0
    rank = _rank_from_end(x, rng.random(x.nnz))
    rows = x.rowids()
    held = rank < n_hold[rows]
    g = group[rows]
    return StrongSplit(
        train=x.select(g == 0),
        valid_fold_in=x.select((g == 1) & ~held), valid_test=x.select((g == 1) & held),
        test_fold_in=x.select((g == 2) & ~held), test_test=x.select((g == 2) & held),
        train_users=train_users, valid_users=valid_users, test_users=test_users)


def kfold(n_rows: int, k: int = 5, *, seed: int | None = 0, shuffle: bool = True
          ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train_rows, test_rows) index arrays of K folds over ``n_rows`` rows in file order.

    Same folds as ``surprise.model_selection.KFold(n_splits=k, random_state=seed, shuffle=shuffle)``: the row
    indices are shuffled with ``numpy.random.RandomState(seed)``, then cut into k consecutive folds whose sizes
    differ by at most one (the first ``n_rows % k`` folds get the extra row). Build each fold's Interactions from
    the file's columns with the full data's id tables, e.g. ``Interactions.from_arrays(u[tr], i[tr], r[tr],
    user_ids=all_users.user_ids, item_ids=all_users.item_ids)``."""
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise ValueError(f"n_rows must be an integer >= 1, got {n_rows!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= n_rows:
        raise ValueError(f"k must be an integer in [2, n_rows={n_rows}], got {k!r}")
    idx = np.arange(n_rows)
    if shuffle:
        np.random.RandomState(seed).shuffle(idx)
    stop = 0
    for fold in range(k):
        start = stop
        stop += n_rows // k
        if fold < n_rows % k:
            stop += 1
        yield np.concatenate([idx[:start], idx[stop:]]), idx[start:stop]
