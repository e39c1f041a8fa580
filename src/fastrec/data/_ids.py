"""Input checks and external-id <-> internal-id mapping shared by the constructors and loaders.

Id modes, as accepted by ``Interactions.from_arrays(user_ids=..., item_ids=...)`` and the loaders:

- ``None`` (factorize): the distinct external ids become 0..n-1 in sorted order (first-appearance order when the ids
  cannot be sorted, e.g. mixed types). Integer ids with a small range use a presence table (O(n)), others a sort.
- ``"identity"``: the ids already are dense non-negative integers; they are kept as they are, with n given
  (``n_users`` / ``n_items``) or max + 1.
- an array of external ids (index = internal id), e.g. ``train.item_ids``: ids are looked up in it, so a test set
  shares the training set's id space; ids not in it raise, or are dropped with ``unknown="drop"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

IdSpec = Any  # None | "identity" | array-like of external ids

__all__ = ["show", "as_1d", "check_finite", "check_ids_int", "factorize", "lookup", "map_ids", "normalize_id_table"]


def show(v: Any) -> str:
    """A value for an error message: numpy scalars as plain Python values."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def as_1d(name: str, x: Any) -> np.ndarray:
    """x as a 1-d numpy array, or a ValueError naming the argument."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    return arr


def check_finite(name: str, x: np.ndarray) -> None:
    """Raises ValueError naming the argument, the first position and the value when x holds NaN or inf."""
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must be finite: {name}[{k}] = {show(x[k])}")


def check_ids_int(name: str, x: np.ndarray) -> np.ndarray:
    """Numeric ids as integers (integral floats become int64; integer arrays keep their dtype), all >= 0.
    Other kinds (str, objects) pass unchanged."""
    if x.dtype.kind == "b":
        raise TypeError(f"{name} must hold integer or string ids, got dtype bool")
    if x.dtype.kind == "f":
        check_finite(name, x)
        frac = x != np.floor(x)
        if frac.any():
            k = int(np.flatnonzero(frac)[0])
            raise ValueError(f"{name} must hold integer ids: {name}[{k}] = {show(x[k])}")
        x = x.astype(np.int64)
    if x.dtype.kind in "iu":
        if x.dtype.kind == "u" and x.dtype.itemsize == 8 and x.size and x.max() > np.iinfo(np.int64).max:
            k = int(np.argmax(x))
            raise ValueError(f"{name} must fit in int64: {name}[{k}] = {show(x[k])}")
        if x.size and x.dtype.kind == "i" and x.min() < 0:
            k = int(np.argmin(x))
            raise ValueError(f"{name} must be non-negative ids: {name}[{k}] = {show(x[k])}")
    return x


def _presence_factorize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hi = int(x.max())
    present = np.zeros(hi + 1, np.bool_)
    present[x] = True
    uniques = np.flatnonzero(present)
    table = np.cumsum(present, dtype=np.int64 if uniques.size >= 2**31 else np.int32) - 1
    return table[x], uniques


def factorize(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques): dense integer ids for the distinct values of x, in sorted order when sortable."""
    if x.dtype.kind in "iu":
        if x.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        hi = int(x.max())
        if hi < max(4 * x.size, 1 << 22):
            return _presence_factorize(x)
        uniques, codes = np.unique(x, return_inverse=True)
        return codes.astype(np.int64, copy=False), uniques
    try:
        uniques, codes = np.unique(x, return_inverse=True)
        return codes.astype(np.int64, copy=False).ravel(), uniques
    except TypeError:  # unsortable (mixed types): first-appearance order
        table: dict[Any, int] = {}
        codes = np.fromiter((table.setdefault(v, len(table)) for v in x.tolist()), np.int64, count=x.size)
        uniques = np.empty(len(table), dtype=object)
        uniques[:] = list(table)
        return codes, uniques


def normalize_id_table(name: str, table: Any) -> np.ndarray:
    """A given external-id table as a 1-d array with distinct entries."""
    arr = as_1d(name, table)
    if arr.dtype.kind in "fiu":
        arr = check_ids_int(name, arr) if arr.dtype.kind == "f" else arr
    if arr.dtype.kind in "iuUS":
        uniq = np.unique(arr)
        if uniq.size != arr.size:
            raise ValueError(f"{name} must hold distinct ids, got {arr.size - uniq.size} repeated")
    return arr


def lookup(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Internal ids of external ids x in table (index = internal id); -1 where absent."""
    if x.size == 0:
        return np.zeros(0, np.int64)
    if table.dtype.kind in "iu" and x.dtype.kind in "iu":
        if table.size and table.min() >= 0 and int(table.max()) < max(4 * (table.size + x.size), 1 << 22):
            hi = max(int(table.max()), int(x.max()))
            inv = np.full(hi + 1, -1, np.int64)
            inv[table] = np.arange(table.size, dtype=np.int64)
            out = np.full(x.size, -1, np.int64)
            ok = (x >= 0) & (x <= hi)
            out[ok] = inv[x[ok]]
            return out
    try:
        order = np.argsort(table, kind="stable")
        sorted_table = table[order]
        pos = np.searchsorted(sorted_table, x)
        pos = np.minimum(pos, max(table.size - 1, 0))
        found = table.size > 0
        out = np.where(found & (sorted_table[pos] == x), order[pos], -1) if found else np.full(x.size, -1)
        return np.asarray(out, np.int64)
    except TypeError:
        index = {v: i for i, v in enumerate(table.tolist())}
        return np.fromiter((index.get(v, -1) for v in x.tolist()), np.int64, count=x.size)


def map_ids(
    name: str, x: np.ndarray, spec: IdSpec, n: int | None, n_name: str, unknown: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Maps external ids to internal ones.

    Returns (codes int64, table of external ids, keep mask or None). ``keep`` is set only when ``unknown="drop"``
    removed entries."""
    if unknown not in ("error", "drop"):
        raise ValueError(f"unknown must be 'error' or 'drop', got {unknown!r}")
    if isinstance(spec, str):
        if spec != "identity":
            raise ValueError(f"{name.rstrip('s')}_ids must be None, 'identity' or an array of ids, got {spec!r}")
        if x.dtype.kind not in "iu":
            raise TypeError(f"{name}: identity ids must be integers, got dtype {x.dtype}")
        hi = int(x.max()) + 1 if x.size else 0
        size = hi if n is None else int(n)
        if n is not None and n < 0:
            raise ValueError(f"{n_name} must be >= 0, got {n}")
        keep = None
        if hi > size:
            if unknown == "error":
                k = int(np.argmax(x))
                raise ValueError(f"{name}[{k}] = {show(x[k])} is out of range for {n_name}={size}")
            keep = x < size
        return x, np.arange(size, dtype=np.int64), keep
    if spec is None:
        codes, uniques = factorize(name, x)
        if n is not None and n != uniques.size:
            raise ValueError(f"{n_name}={n} given but {name} holds {uniques.size} distinct ids; "
                             f"pass {name.rstrip('s')}_ids='identity' to keep ids as they are")
        return codes, uniques, None
    table = normalize_id_table(f"{name.rstrip('s')}_ids", spec)
    if n is not None and n != table.size:
        raise ValueError(f"{n_name}={n} disagrees with the {table.size} ids given in {name.rstrip('s')}_ids")
    codes = lookup(table, x)
    missing = codes < 0
    keep = None
    if missing.any():
        if unknown == "error":
            k = int(np.flatnonzero(missing)[0])
            raise ValueError(f"{name}[{k}] = {show(x[k])} is not in the given {name.rstrip('s')}_ids "
                             f"({int(missing.sum())} such entries); pass unknown='drop' to drop them")
        keep = ~missing
    return codes, table, keep


def describe(values: Sequence[Any] | np.ndarray, limit: int = 5) -> str:
    """A short list of values for messages."""
    vals = list(values[:limit])
    more = "" if len(values) <= limit else f", ... ({len(values)} in all)"
    return ", ".join(map(str, vals)) + more
