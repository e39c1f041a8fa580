"""Synthetic interactions at any scale: Zipf item popularity and log-normal user activity.

Each interaction k draws its user from the activity weights and its item from the Zipf weights (two alias-table
draws keyed on (seed, k)), so the entries come in random order, as a log file would, and the same seed gives the
same data at any thread count. Items are ranked by a random permutation, so the popular items are spread over the
id range rather than being 0, 1, 2, ...
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastrec.data._rng import below, draw_u64, low_unit, next_u64, seed_key
from fastrec.data.interactions import Interactions
from fastrec.data.samplers import _build_alias

__all__ = ["synthetic_arrays", "synthetic_interactions", "zipf_weights"]


@njit(cache=True, nogil=True, parallel=True)
def _draw_pairs(n: int, key: np.uint64, u_prob: np.ndarray, u_alias: np.ndarray, i_prob: np.ndarray,
                i_alias: np.ndarray, i_perm: np.ndarray, t_max: np.int64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_users = u_prob.shape[0]
    n_items = i_prob.shape[0]
    users = np.empty(n, np.int32)
    items = np.empty(n, np.int32)
    times = np.empty(n if t_max > 0 else 0, np.int64)
    for k in prange(n):
        x = draw_u64(key, k)
        c = below(x, n_users)
        users[k] = c if low_unit(x) < u_prob[c] else u_alias[c]
        x = next_u64(x)
        c = below(x, n_items)
        items[k] = i_perm[c if low_unit(x) < i_prob[c] else i_alias[c]]
        if t_max > 0:
            x = next_u64(x)
            times[k] = np.int64(((x >> np.uint64(11)) % np.uint64(t_max)))
    return users, items, times


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    """Weights 1 / (rank + 1) ** exponent for ranks 0..n-1."""
    return 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent


def synthetic_arrays(
    n_users: int,
    n_items: int,
    n_interactions: int,
    *,
    zipf_exponent: float = 0.9,
    activity_sigma: float = 1.0,
    with_timestamps: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Raw (users int32, items int32, timestamps int64 or None) entries in random order; repeated (user, item)
    pairs occur (a heavy user draws popular items more than once), as in real logs.

    User activity weights are log-normal(0, ``activity_sigma``); item weights Zipf with ``zipf_exponent``."""
    for name, v in (("n_users", n_users), ("n_items", n_items), ("n_interactions", n_interactions)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if n_users >= 2**31 or n_items >= 2**31:
        raise ValueError(f"n_users and n_items must be < 2**31, got {n_users} and {n_items}")
    if not zipf_exponent >= 0 or not activity_sigma >= 0:
        raise ValueError(f"zipf_exponent and activity_sigma must be >= 0, got {zipf_exponent} and {activity_sigma}")
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, activity_sigma, n_users)
    u_prob, u_alias, _ = _build_alias(activity)
    i_prob, i_alias, _ = _build_alias(zipf_weights(n_items, zipf_exponent))
    i_perm = rng.permutation(n_items).astype(np.int32)
    t_max = np.int64(10**9 if with_timestamps else 0)
    users, items, times = _draw_pairs(int(n_interactions), seed_key(seed), u_prob, u_alias, i_prob, i_alias, i_perm,
                                      t_max)
    return users, items, times if with_timestamps else None


def synthetic_interactions(
    n_users: int,
    n_items: int,
    n_interactions: int,
    *,
    zipf_exponent: float = 0.9,
    activity_sigma: float = 1.0,
    with_timestamps: bool = False,
    duplicates: str = "first",
    seed: int = 0,
) -> Interactions:
    """:func:`synthetic_arrays` as :class:`Interactions` over all ``n_users`` x ``n_items`` ids (identity ids);
    repeated pairs merged by ``duplicates`` ("first" keeps one, "sum" counts them), so nnz is a little below
    ``n_interactions``."""
    users, items, times = synthetic_arrays(n_users, n_items, n_interactions, zipf_exponent=zipf_exponent,
                                           activity_sigma=activity_sigma, with_timestamps=with_timestamps, seed=seed)
    return Interactions.from_arrays(users, items, None, times, duplicates=duplicates, user_ids="identity",
                                    item_ids="identity", n_users=n_users, n_items=n_items)
