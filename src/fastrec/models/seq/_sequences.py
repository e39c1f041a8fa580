"""Item sequences in the shapes the sequential models take, and the epoch orders their training loops walk.

Conventions: item ids are internal ids in ``[0, n_items)``; a padded batch is int64 ``[B, L]`` with ``-1`` as
padding, *left*-padded (the most recent item in the last column), as :meth:`fastrec.data.Interactions.padded_sequences`
returns it. Jagged sequences are ``(offsets int64 [n + 1], items [nnz])``: sequence r is
``items[offsets[r]:offsets[r+1]]``, as :meth:`fastrec.data.Interactions.sequences` and :class:`fastrec.data.Sessions` hold them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fastrec.data import Interactions

__all__ = ["PAD", "as_jagged", "as_padded", "check_int", "length_batches", "pad_left", "sequences_of"]

PAD = -1


def check_int(name: str, value: Any, low: int = 1) -> None:
    """Raises ValueError naming ``name`` unless ``value`` is an integer (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def sequences_of(*parts: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Per-user time-ordered sequences of the union of ``parts`` (e.g. train and valid of a leave-one-out split, the
    history a test item is predicted from), jagged. The parts share one id space and carry timestamps."""
    if not parts:
        raise ValueError("sequences_of: no interactions given")
    for k, p in enumerate(parts):
        if not isinstance(p, Interactions):
            raise TypeError(f"parts[{k}] must be Interactions, got {type(p).__name__}")
        if p.timestamps is None:
            raise ValueError(f"parts[{k}] has no timestamps (load line files with positions_as_timestamps=True)")
        if p.shape != parts[0].shape:
            raise ValueError(f"parts[{k}] has shape {p.shape}, parts[0] has {parts[0].shape}")
    rows = np.concatenate([p.rowids() for p in parts])
    items = np.concatenate([p.indices for p in parts])
    ts = np.concatenate([p.timestamps for p in parts])
    order = np.lexsort((items, ts, rows))
    offsets = np.zeros(parts[0].n_users + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=parts[0].n_users), out=offsets[1:])
    return offsets, items[order].astype(np.int64)


def as_jagged(histories: Any) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, items) from any accepted form of histories:

    - a ``(offsets, items)`` tuple (jagged);
    - a 2-D array or tensor padded with negative ids (any side; the non-negative entries of a row, in order, are its
      sequence);
    - a list of 1-D sequences.
    """
    if isinstance(histories, tuple) and len(histories) == 2 and not np.isscalar(histories[0]):
        offsets = np.asarray(_numpy(histories[0]), dtype=np.int64)
        items = np.asarray(_numpy(histories[1]), dtype=np.int64)
        if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != items.size \
                or (np.diff(offsets) < 0).any():
            raise ValueError("histories: jagged offsets must be 1-D, non-decreasing, start at 0 and end at "
                             f"len(items)={items.size}")
        return offsets, items
    if isinstance(histories, (torch.Tensor, np.ndarray)):
        arr = np.asarray(_numpy(histories))
        if arr.ndim != 2:
            raise ValueError(f"histories: a padded batch must be 2-D [batch, length], got shape {arr.shape}")
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"histories: item ids must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        valid = arr >= 0
        offsets = np.zeros(arr.shape[0] + 1, np.int64)
        np.cumsum(valid.sum(axis=1), out=offsets[1:])
        return offsets, arr[valid]
    if isinstance(histories, Sequence):
        seqs = [np.asarray(_numpy(s), dtype=np.int64).reshape(-1) for s in histories]
        offsets = np.zeros(len(seqs) + 1, np.int64)
        np.cumsum([s.size for s in seqs], out=offsets[1:])
        return offsets, (np.concatenate(seqs) if seqs else np.zeros(0, np.int64))
    raise TypeError(f"histories: expected a padded 2-D array/tensor, a list of sequences or an (offsets, items) "
                    f"tuple, got {type(histories).__name__}")


def _numpy(x: Any) -> Any:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


def pad_left(offsets: np.ndarray, items: np.ndarray, max_len: int, rows: np.ndarray | None = None,
             trim: bool = False, ends: np.ndarray | None = None) -> np.ndarray:
    """The last ``max_len`` items of the given rows (default all), left-padded with -1: int64 [len(rows), max_len].
    With ``trim`` the width shrinks to the longest selected row (at least 1), dropping all-padding columns. ``ends``
    (positions in ``items``, one per selected row, within the row) cuts each row there instead of at its end."""
    if rows is None:
        rows = np.arange(offsets.size - 1)
    if ends is None:
        ends = offsets[rows + 1]
    lengths = np.minimum(ends - offsets[rows], max_len)
    width = max(int(lengths.max()), 1) if (trim and lengths.size) else max_len
    cols = np.arange(width)
    keep = cols[None, :] >= width - lengths[:, None]
    src = ends[:, None] - width + cols[None, :]
    out = np.full((rows.size, width), PAD, np.int64)
    out[keep] = items[src[keep]]
    return out


def as_padded(histories: Any, max_len: int, n_items: int) -> torch.Tensor:
    """Left-padded int64 tensor [B, <= max_len] of the last ``max_len`` items of each history (trimmed to the
    longest), ids checked against ``n_items``. An empty history is allowed (a row of padding)."""
    offsets, items = as_jagged(histories)
    if items.size and (items.min() < 0 or items.max() >= n_items):
        k = int(np.flatnonzero((items < 0) | (items >= n_items))[0])
        raise ValueError(f"histories: item id {int(items[k])} is out of range [0, {n_items})")
    return torch.from_numpy(pad_left(offsets, items, max_len, trim=True))


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucket: int) -> list[np.ndarray]:
    """Row indices of one epoch's batches: a random permutation cut into batches. With ``bucket > 1`` each run of
    ``bucket`` consecutive batches of the permutation is sorted by length first (similar lengths share a batch, so
    trimmed batches carry little padding), and the batch order is shuffled again."""
    order = rng.permutation(lengths.size)
    if bucket > 1:
        chunk = batch_size * bucket
        for s in range(0, order.size, chunk):
            part = order[s:s + chunk]
            order[s:s + chunk] = part[np.argsort(lengths[part], kind="stable")]
    batches = [order[s:s + batch_size] for s in range(0, order.size, batch_size)]
    if bucket > 1:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
