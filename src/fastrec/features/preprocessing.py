"""Preprocessing from a table (a pandas DataFrame or a dict of columns) to model-ready feature arrays.

Each column transform is fitted on the training rows and produces one feature spec:

- :class:`Categorical`: label encoding; values seen fewer than ``min_count`` times in the fit data, and values never
  seen, map to the out-of-vocabulary id 0 (never an error); :class:`SparseFeature`.
- :class:`Hashed`: the hashing trick for unbounded vocabularies (crc32 of the value's string form, modulo
  ``buckets``; stable across processes); :class:`SparseFeature`.
- :class:`MultiHot`: a column of lists (or ``sep``-separated strings) label-encoded as above; :class:`MultiHotFeature`.
- :class:`Sequence`: a column of ordered lists, truncated to the last ``max_len`` ids; may share the vocabulary (and
  so the embedding table) of a :class:`Categorical` column; :class:`SequenceFeature`.
- :class:`Numeric`: normalization (standard, min-max, Criteo's log) with a documented NaN policy; :class:`DenseFeature`.
- :class:`Binned`: numeric values cut into quantile (or given) bins; NaN goes to bin 0; :class:`SparseFeature`.
- :class:`Cross`: the cross product of several columns, hashed (the wide part of Wide & Deep); :class:`SparseFeature`.

:class:`Preprocessor` fits them together, transforms tables into a :class:`FeatureTable` (numpy columns + labels),
and saves/loads its fitted state as plain data (JSON-compatible; it also travels inside a model's save file).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import zlib
from collections.abc import Mapping
from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fastrec._atomic import write_text_atomically
from fastrec.data.batching import _EpochBatches
from fastrec.features.specs import DenseFeature, Feature, MultiHotFeature, SequenceFeature, SparseFeature

__all__ = ["Binned", "Categorical", "Cross", "FeatureBatches", "FeatureTable", "Hashed", "MultiHot", "Numeric",
           "Preprocessor", "Sequence"]

OOV = 0  # the out-of-vocabulary id of every label-encoded column


# ---------------------------------------------------------------------------------------------------- helpers
def _column(table: Any, name: str) -> np.ndarray:
    try:
        col = table[name]
    except (KeyError, IndexError, TypeError):
        cols = list(table.keys()) if hasattr(table, "keys") else "?"
        raise KeyError(f"column {name!r} is not in the data; columns: {cols}") from None
    return np.asarray(col.to_numpy() if hasattr(col, "to_numpy") else col)


def _is_missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype == object:
        return np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values], dtype=bool)
    return np.zeros(values.shape, dtype=bool)


def _tokens(values: np.ndarray) -> np.ndarray:
    """Values of a categorical column in a sortable form: int64 for integers, else str (missing -> '')."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        finite = values[~np.isnan(values)]
        if np.all(finite == np.floor(finite)):
            out = np.where(np.isnan(values), np.iinfo(np.int64).min, values).astype(np.int64)
            return out
    missing = _is_missing(values)
    out = values.astype(str).astype(object)
    out[missing] = ""
    return out


def _sort_key(values: np.ndarray) -> np.ndarray:
    return values if values.dtype != object else values.astype(str)


class _Vocabulary:
    """Sorted kept values; encode(x) = 1 + position, or 0 (OOV) for values not kept."""

    def __init__(self, values: Seq[Any]) -> None:
        self.values = list(values)
        kind = int if self.values and isinstance(self.values[0], int) else str
        self._array = np.array(self.values, dtype=np.int64 if kind is int else str)
        self._int = kind is int

    @classmethod
    def fit(cls, tokens: np.ndarray, min_count: int) -> _Vocabulary:
        uniq, counts = np.unique(_sort_key(tokens), return_counts=True)
        kept = uniq[counts >= min_count]
        if tokens.dtype == np.int64:
            kept = kept[kept != np.iinfo(np.int64).min]  # missing float values
            return cls([int(v) for v in kept])
        return cls([str(v) for v in kept if v != ""])

    def __len__(self) -> int:
        return len(self.values)

    def encode(self, tokens: np.ndarray) -> np.ndarray:
        if not len(self.values) or tokens.size == 0:
            return np.zeros(tokens.shape, np.int64)
        keys = tokens if self._int and tokens.dtype == np.int64 else tokens.astype(str)
        if self._int and keys.dtype != np.int64:
            return np.zeros(tokens.shape, np.int64)  # string values never match an integer vocabulary
        if not self._int:
            keys = keys.astype(self._array.dtype) if keys.dtype.kind == "U" else keys.astype(str)
        pos = np.searchsorted(self._array, keys)
        pos_c = np.minimum(pos, len(self.values) - 1)
        found = self._array[pos_c] == keys
        return np.where(found, pos_c + 1, OOV).astype(np.int64)


def _hash_tokens(tokens: np.ndarray, buckets: int, seed: int) -> np.ndarray:
    """crc32(seed, str(value)) % buckets, computed once per distinct value."""
    uniq, inverse = np.unique(_sort_key(tokens), return_inverse=True)
    prefix = f"{seed}\x1f".encode()
    codes = np.fromiter((zlib.crc32(prefix + str(v).encode()) % buckets for v in uniq), np.int64, count=uniq.size)
    return codes[inverse.reshape(-1)].reshape(tokens.shape)


def _lists(values: np.ndarray, sep: str | None, name: str) -> list[Seq[Any]]:
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(())
        elif isinstance(v, str):
            if sep is None:
                raise ValueError(f"column {name!r} holds strings; pass sep= to split them into lists")
            out.append([t for t in v.split(sep) if t])
        else:
            out.append(list(v))
    return out


def _flatten(lists: list[Seq[Any]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(x) for x in lists), np.int64, count=len(lists))
    flat = np.array([t for x in lists for t in x] + [None], dtype=object)[:-1]
    if flat.size and all(isinstance(t, (int, np.integer)) for t in flat):
        flat = flat.astype(np.int64)
    return _tokens(flat), lengths


def _pad(values: np.ndarray, lengths: np.ndarray, width: int, keep_last: bool) -> np.ndarray:
    """Jagged (values, lengths) -> [n, width] padded with -1; longer rows keep their first (or last) ids."""
    out = np.full((lengths.size, width), -1, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    kept = np.minimum(lengths, width)
    first = starts + (lengths - kept if keep_last else 0)
    row = np.repeat(np.arange(lengths.size), kept)
    pos = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    out[row, pos] = values[np.repeat(first, kept) + pos]
    return out


# ---------------------------------------------------------------------------------------------------- transforms
class _Transform:
    """One column transform: ``fit`` on the training table, ``transform`` to an array, ``feature`` spec."""

    kind = ""

    def __init__(self, column: str, name: str | None) -> None:
        if not isinstance(column, str) or not column:
            raise ValueError(f"{type(self).__name__}: column must be a non-empty string, got {column!r}")
        self.column = column
        self.name = name or column
        self.fitted = False

    def columns(self) -> list[str]:
        return [self.column]

    def fit(self, table: Any, others: Mapping[str, _Transform]) -> None:
        raise NotImplementedError

    def transform(self, table: Any) -> np.ndarray:
        raise NotImplementedError

    def feature(self) -> Feature:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__}({self.column!r}) is not fitted; call Preprocessor.fit first")


def _check_count(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


class Categorical(_Transform):
    """Label encoding of a categorical column: ids 1..n for values seen at least ``min_count`` times when fitting
    (sorted), 0 for the rest and for values never seen (the OOV bucket). Missing values (None, NaN) map to 0.

    Args:
        column: the input column.
        name: the feature name (default: the column).
        min_count: rarer values go to the OOV bucket.
        table: the embedding table name in the spec (default: the feature name).
    """

    kind = "categorical"

    def __init__(self, column: str, name: str | None = None, *, min_count: int = 1, table: str | None = None) -> None:
        super().__init__(column, name)
        self.min_count = _check_count(f"Categorical({column!r}).min_count", min_count, 1)
        self.table = table
        self.vocab: _Vocabulary | None = None

    def fit(self, table: Any, others: Mapping[str, _Transform]) -> None:
        self.vocab = _Vocabulary.fit(_tokens(_column(table, self.column)), self.min_count)
        self.fitted = True

    def transform(self, table: Any) -> np.ndarray:
        self._check_fitted()
        return self.vocab.encode(_tokens(_column(table, self.column)))

    def feature(self) -> SparseFeature:
        self._check_fitted()
        return SparseFeature(self.name, len(self.vocab) + 1, self.table)

    def config(self) -> dict[str, Any]:
        return {"column": self.column, "name": self.name, "min_count": self.min_count, "table": self.table}

    def state(self) -> dict[str, Any]:
        return {"vocab": self.vocab.values}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.vocab = _Vocabulary(state["vocab"])
        self.fitted = True


class Hashed(_Transform):
    """The hashing trick: id = crc32(seed, str(value)) % buckets. Needs no fitting; unseen values hash like any."""

    kind = "hashed"

    def __init__(self, column: str, buckets: int, name: str | None = None, *, seed: int = 0) -> None:
        super().__init__(column, name)
        self.buckets = _check_count(f"Hashed({column!r}).buckets", buckets, 1)
        self.seed = int(seed)

    def fit(self, table: Any, others: Mapping[str, _Transform]) -> None:
        _column(table, self.column)
        self.fitted = True

    def transform(self, table: Any) -> np.ndarray:
        return _hash_tokens(_tokens(_column(table, self.column)), self.buckets, self.seed)

    def feature(self) -> SparseFeature:
        return SparseFeature(self.name, self.buckets)

    def config(self) -> dict[str, Any]:
        return {"column": self.column, "buckets": self.buckets, "name": self.name, "seed": self.seed}

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.fitted = True


class MultiHot(_Transform):
    """A bag of categorical values per row (a list, or a string split on ``sep``), label-encoded like
    :class:`Categorical` (OOV id 0), padded with -1 to ``max_len`` (default: the longest bag seen when fitting;
    longer bags keep their first ``max_len`` values)."""

    kind = "multi_hot"

    def __init__(self, column: str, name: str | None = None, *, sep: str | None = None, pooling: str = "mean",
                 min_count: int = 1, max_len: int | None = None) -> None:
        super().__init__(column, name)
        self.sep = sep
        self.pooling = pooling
        self.min_count = _check_count(f"MultiHot({column!r}).min_count", min_count, 1)
        self.max_len = None if max_len is None else _check_count(f"MultiHot({column!r}).max_len", max_len, 1)
        self.vocab: _Vocabulary | None = None
        MultiHotFeature(self.name, 1, pooling)  # validates pooling now

    def fit(self, table: Any, others: Mapping[str, _Transform]) -> None:
        tokens, lengths = _flatten(_lists(_column(table, self.column), self.sep, self.column))
        self.vocab = _Vocabulary.fit(tokens, self.min_count)
        if self.max_len is None:
            self.max_len = max(int(lengths.max()) if lengths.size else 1, 1)
        self.fitted = True

    def transform(self, table: Any) -> np.ndarray:
        self._check_fitted()
        tokens, lengths = _flatten(_lists(_column(table, self.column), self.sep, self.column))
        return _pad(self.vocab.encode(tokens), lengths, self.max_len, keep_last=False)

    def feature(self) -> MultiHotFeature:
        self._check_fitted()
        return MultiHotFeature(self.name, len(self.vocab) + 1, self.pooling)

    def config(self) -> dict[str, Any]:
        return {"column": self.column, "name": self.name, "sep": self.sep, "pooling": self.pooling,
                "min_count": self.min_count, "max_len": self.max_len}

    def state(self) -> dict[str, Any]:
        return {"vocab": self.vocab.values, "max_len": self.max_len}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.vocab = _Vocabulary(state["vocab"])
        self.max_len = int(state["max_len"])
        self.fitted = True


class Sequence(_Transform):
    """An ordered list of ids per row (oldest first), keeping the last ``max_len``, padded with -1 at the end.

    ``vocabulary`` names a :class:`Categorical` transform (by feature name) whose vocabulary and embedding table the
    sequence shares (a behaviour sequence of items shares the candidate item's); else the sequence fits its own.
    """

    kind = "sequence"

    def __init__(self, column: str, max_len: int, name: str | None = None, *, vocabulary: str | None = None,
                 sep: str | None = None, min_count: int = 1) -> None:
        super().__init__(column, name)
        self.max_len = _check_count(f"Sequence({column!r}).max_len", max_len, 1)
        self.vocabulary = vocabulary
        self.sep = sep
        self.min_count = _check_count(f"Sequence({column!r}).min_count", min_count, 1)
        self.vocab: _Vocabulary | None = None
        self._shared: Categorical | None = None

    def fit(self, table: Any, others: Mapping[str, _Transform]) -> None:
        if self.vocabulary is not None:
            shared = others.get(self.vocabulary)
            if not isinstance(shared, Categorical):
                raise ValueError(f"Sequence({self.column!r}): vocabulary={self.vocabulary!r} must name a Categorical "
                                 f"transform of the same Preprocessor; names: {sorted(others)}")
            self._shared = shared
        else:
            tokens, _ = _flatten(_lists(_column(table, self.column), self.sep, self.column))
            self.vocab = _Vocabulary.fit(tokens, self.min_count)
        self.fitted = True

    def _vocab(self) -> _Vocabulary:
        return self._shared.vocab if self._shared is not None else self.vocab

    def transform(self, table: Any) -> np.ndarray:
        self._check_fitted()
        tokens, lengths = _flatten(_lists(_column(table, self.column), self.sep, self.column))
        return _pad(self._vocab().encode(tokens), lengths, self.max_len, keep_last=True)

    def feature(self) -> SequenceFeature:
        self._check_fitted()
        table = (self._shared.table or self._shared.name) if self._shared is not None else None
        return SequenceFeature(self.name, len(self._vocab()) + 1, self.max_len, table)

    def config(self) -> dict[str, Any]:
        return {"column": self.column, "max_len": self.max_len, "name": self.name, "vocabulary": self.vocabulary,
                "sep": self.sep, "min_count": self.min_count}

    def state(self) -> dict[str, Any]:
        return {"vocab": None if self._shared is not None else self.vocab.values}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.vocab = None if state["vocab"] is None else _Vocabulary(state["vocab"])
        self.fitted = True


_NORMALIZE = ("standard", "minmax", "log", None)


class Numeric(_Transform):
    """A numeric column as a :class:`DenseFeature`.

    Args:
        normalize: ``"standard"`` ((x - mean) / std of the fit data), ``"minmax"`` ((x - min) / (max - min)),
            ``"log"`` (Criteo's ``log(x)^2`` for x > 2, else x) or None.
        fill_na: NaN handling. None (default): NaN raises ValueError naming the column; a number: NaN becomes that
            number (before normalization); ``"mean"``: the fit data's mean.
    """

    kind = "numeric"

    def __init__(self, column: str, name: str | None = None, *, normalize: str | None = "standard",
                 fill_na: float | str | None = None) -> None:
        super().__init__(column, name)
        if normalize not in _NORMALIZE:
            raise ValueError(f"Numeric({column!r}): normalize must be one of {_NORMALIZE}, got {normalize!r}")
        if not (fill_na is None or fill_na == "mean" or isinstance(fill_na, (int, float))):
            raise ValueError(f"Numeric({column!r}): fill_na must be None, a number or 'mean', got {fill_na!r}")
        self.normalize = normalize
        self.fill_na = fill_na
        self.stats: dict[str, float] = {}

    def _values(self, table: Any) -> np.ndarray:
        raw = _column(table, self.column)
        try:
            x = raw.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Numeric({self.column!r}): column {self.column!r} is not numeric "
                             f"(dtype {raw.dtype})") from None
        nan = np.isnan(x)
        if nan.any():
            if self.fill_na is None:
                raise ValueError(f"Numeric({self.column!r}): column {self.column!r} has {int(nan.sum())} NaN value(s); "
                                 "pass fill_na= (a number or 'mean') to fill them")
            fill = self.stats["fill"] if self.fitted else (np.nanmean(x) if self.fill_na == "mean" else self.fill_na)
            x = np.where(nan, fill, x)
        return np.where(x > 2, np.log(np.maximum(x, 2)) ** 2, x) if self.normalize == "log" else x

    def fit(self, table: Any, others: Mapping[str, _Transform]) -> None:
        self.fitted = False
        x = self._values(table)
        raw = _column(table, self.column).astype(np.float64)
        fill = float(np.nanmean(raw)) if self.fill_na == "mean" else float(self.fill_na or 0.0)
        std = float(x.std()) if x.size else 1.0
        self.stats = {"mean": float(x.mean()) if x.size else 0.0, "std": std if std > 0 else 1.0,
                      "min": float(x.min()) if x.size else 0.0, "max": float(x.max()) if x.size else 1.0,
                      "fill": fill}
        self.fitted = True

    def transform(self, table: Any) -> np.ndarray:
        self._check_fitted()
        x = self._values(table)
        s = self.stats
        if self.normalize == "standard":
            x = (x - s["mean"]) / s["std"]
        elif self.normalize == "minmax":
            x = (x - s["min"]) / ((s["max"] - s["min"]) or 1.0)
        return x.astype(np.float32)

    def feature(self) -> DenseFeature:
        return DenseFeature(self.name)

    def config(self) -> dict[str, Any]:
        return {"column": self.column, "name": self.name, "normalize": self.normalize, "fill_na": self.fill_na}

    def state(self) -> dict[str, Any]:
        return {"stats": dict(self.stats)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.stats = {k: float(v) for k, v in state["stats"].items()}
        self.fitted = True


class Binned(_Transform):
    """A numeric column cut into bins, as a categorical feature: id 0 for NaN, else 1 + the number of boundaries
    <= x (bins are [b_{k-1}, b_k)).

    Args:
        bins: the number of quantile bins fitted on the data, or explicit increasing boundaries (a list).
    """

    kind = "binned"

    def __init__(self, column: str, bins: int | Seq[float] = 10, name: str | None = None) -> None:
        super().__init__(column, name)
        if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
            self.n_bins = _check_count(f"Binned({column!r}).bins", bins, 2)
            self.boundaries: list[float] | None = None
        else:
            b = [float(v) for v in bins]
            if not b or any(y <= x for x, y in itertools.pairwise(b)):
                raise ValueError(f"Binned({column!r}): bins must be an int >= 2 or increasing boundaries, got {bins!r}")
            self.n_bins, self.boundaries = len(b) + 1, b
        self._given = self.boundaries is not None

    def fit(self, table: Any, others: Mapping[str, _Transform]) -> None:
        x = _column(table, self.column).astype(np.float64)
        if not self._given:
            x = x[~np.isnan(x)]
            qs = np.quantile(x, np.linspace(0, 1, self.n_bins + 1)[1:-1]) if x.size else np.zeros(0)
            self.boundaries = [float(v) for v in np.unique(qs)]
        self.fitted = True

    def transform(self, table: Any) -> np.ndarray:
        self._check_fitted()
        x = _column(table, self.column).astype(np.float64)
        ids = np.searchsorted(np.asarray(self.boundaries), x, side="right") + 1
        return np.where(np.isnan(x), 0, ids).astype(np.int64)

    def feature(self) -> SparseFeature:
        self._check_fitted()
        return SparseFeature(self.name, len(self.boundaries) + 2)

    def config(self) -> dict[str, Any]:
        return {"column": self.column, "bins": self.boundaries if self._given else self.n_bins, "name": self.name}

    def state(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.boundaries = [float(v) for v in state["boundaries"]]
        self.fitted = True


class Cross(_Transform):
    """The cross product of categorical columns, hashed into ``buckets`` ids (Wide & Deep's cross features)."""

    kind = "cross"

    def __init__(self, columns: Seq[str], buckets: int, name: str | None = None, *, seed: int = 0) -> None:
        columns = list(columns)
        if len(columns) < 2:
            raise ValueError(f"Cross: columns must name at least two columns, got {columns!r}")
        super().__init__(columns[0], name or "_x_".join(columns))
        self.cross_columns = columns
        self.buckets = _check_count(f"Cross({columns!r}).buckets", buckets, 1)
        self.seed = int(seed)

    def columns(self) -> list[str]:
        return list(self.cross_columns)

    def fit(self, table: Any, others: Mapping[str, _Transform]) -> None:
        for c in self.cross_columns:
            _column(table, c)
        self.fitted = True

    def transform(self, table: Any) -> np.ndarray:
        parts = [_sort_key(_tokens(_column(table, c))).astype(str).astype(object) for c in self.cross_columns]
        joined = parts[0]
        for p in parts[1:]:
            joined = joined + "\x1e" + p
        return _hash_tokens(joined, self.buckets, self.seed)

    def feature(self) -> SparseFeature:
        return SparseFeature(self.name, self.buckets)

    def config(self) -> dict[str, Any]:
        return {"columns": self.cross_columns, "buckets": self.buckets, "name": self.name, "seed": self.seed}

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.fitted = True


_TRANSFORMS: dict[str, type[_Transform]] = {c.kind: c for c in (Categorical, Hashed, MultiHot, Sequence, Numeric,
                                                                   Binned, Cross)}


# ---------------------------------------------------------------------------------------------------- tables
class FeatureTable:
    """Model-ready columns: a dict feature name -> numpy array (see :mod:`fastrec.features.specs` for the shapes)
    and optional labels (float32 ``[n]``, or ``[n, tasks]`` for multi-task models)."""

    def __init__(self, columns: Mapping[str, np.ndarray], labels: np.ndarray | None = None,
                 label_names: Seq[str] = ("label",)) -> None:
        self.columns = {k: np.asarray(v) for k, v in columns.items()}
        if not self.columns:
            raise ValueError("FeatureTable: no columns")
        sizes = {k: v.shape[0] for k, v in self.columns.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"FeatureTable: columns differ in length: {sizes}")
        self.n = next(iter(sizes.values()))
        self.label_names = list(label_names)
        if labels is not None:
            labels = np.asarray(labels, dtype=np.float32)
            if labels.shape[0] != self.n:
                raise ValueError(f"FeatureTable: {labels.shape[0]} labels for {self.n} rows")
        self.labels = labels

    def __len__(self) -> int:
        return self.n

    def take(self, rows: np.ndarray) -> FeatureTable:
        """The rows ``rows`` (indices or a boolean mask) as a new table."""
        return FeatureTable({k: v[rows] for k, v in self.columns.items()},
                            None if self.labels is None else self.labels[rows], self.label_names)

    def split(self, fractions: Seq[float] = (0.8, 0.1, 0.1), seed: int = 0) -> list[FeatureTable]:
        """A random split into parts of the given fractions (RecBole's 'RS' ordering: shuffle, then cut)."""
        f = np.asarray(fractions, dtype=np.float64)
        if f.ndim != 1 or f.size < 2 or (f <= 0).any():
            raise ValueError(f"split: fractions must be two or more positive numbers, got {fractions!r}")
        order = np.random.default_rng(seed).permutation(self.n)
        cuts = np.floor(np.cumsum(f / f.sum())[:-1] * self.n).astype(np.int64)
        return [self.take(np.sort(part)) for part in np.split(order, cuts)]

    def batches(self, batch_size: int = 4096, *, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False) -> FeatureBatches:
        return FeatureBatches(self, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)


def _to_tensor(a: np.ndarray) -> Tensor:
    if a.dtype.kind in "iu":
        return torch.from_numpy(a.astype(np.int64, copy=False))
    return torch.from_numpy(a.astype(np.float32, copy=False))


class FeatureBatches(_EpochBatches):
    """``(features dict of tensors, labels)`` batches of a :class:`FeatureTable` (labels None when the table has
    none); shuffled per epoch from ``(seed, epoch)`` like :mod:`fastrec.data.batching`."""

    def __init__(self, table: FeatureTable, *, batch_size: int = 4096, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False) -> None:
        super().__init__(len(table), batch_size, shuffle, drop_last, seed)
        self.table = table

    def _make(self, rows: np.ndarray, start: int, eseed: int) -> tuple[dict[str, Tensor], Tensor | None]:
        if not self.shuffle:
            sl = slice(int(rows[0]), int(rows[-1]) + 1)  # contiguous rows: views instead of gathers
            feats = {k: _to_tensor(v[sl]) for k, v in self.table.columns.items()}
            labels = self.table.labels[sl] if self.table.labels is not None else None
        else:
            feats = {k: _to_tensor(v[rows]) for k, v in self.table.columns.items()}
            labels = self.table.labels[rows] if self.table.labels is not None else None
        return feats, (None if labels is None else torch.from_numpy(labels))


# ---------------------------------------------------------------------------------------------------- pipeline
class Preprocessor:
    """Fits column transforms on a training table and turns tables into :class:`FeatureTable`.

    Example::

        pre = Preprocessor([Categorical("user_id"), Categorical("item_id", min_count=2), MultiHot("genres"),
                            Numeric("age", fill_na="mean"), Cross(["gender", "occupation"], buckets=1000)])
        train = pre.fit_transform(train_df, label="click")
        test = pre.transform(test_df, label="click")     # unseen categories -> OOV id 0
        model = DeepFM(pre.features)
    """

    def __init__(self, transforms: Seq[_Transform]) -> None:
        self.transforms = list(transforms)
        if not self.transforms:
            raise ValueError("Preprocessor: transforms must list at least one column transform")
        for t in self.transforms:
            if not isinstance(t, _Transform):
                raise TypeError(f"Preprocessor: expected column transforms (Categorical, Numeric, ...), got "
                                f"{type(t).__name__}")
        names = [t.name for t in self.transforms]
        if len(set(names)) != len(names):
            raise ValueError(f"Preprocessor: feature names must be unique, got {names}")
        self._by_name = {t.name: t for t in self.transforms}

    def fit(self, table: Any) -> Preprocessor:
        for t in self.transforms:  # Categorical first: sequences may share their vocabularies
            if not isinstance(t, Sequence):
                t.fit(table, self._by_name)
        for t in self.transforms:
            if isinstance(t, Sequence):
                t.fit(table, self._by_name)
        return self

    @property
    def features(self) -> list[Feature]:
        """The feature specs of the fitted transforms, in order (pass them to a model)."""
        return [t.feature() for t in self.transforms]

    def transform(self, table: Any, label: str | Seq[str] | None = None) -> FeatureTable:
        """The features of ``table``; with ``label`` (a column, or several for multi-task) the labels too, which must
        be 0 or 1 (raises naming the column otherwise)."""
        columns = {t.name: t.transform(table) for t in self.transforms}
        if label is None:
            return FeatureTable(columns)
        names = [label] if isinstance(label, str) else list(label)
        labels = [_binary_label(_column(table, n), n) for n in names]
        return FeatureTable(columns, labels[0] if len(labels) == 1 else np.stack(labels, 1), names)

    def fit_transform(self, table: Any, label: str | Seq[str] | None = None) -> FeatureTable:
        return self.fit(table).transform(table, label)

    # ---- persistence ----
    def state_dict(self) -> dict[str, Any]:
        """The configuration and fitted state as plain data (lists, dicts, str, numbers)."""
        return {"transforms": [{"kind": t.kind, "config": t.config(), "state": t.state() if t.fitted else None}
                               for t in self.transforms]}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Preprocessor:
        transforms = []
        for entry in state["transforms"]:
            t = _TRANSFORMS[entry["kind"]](**entry["config"])
            transforms.append(t)
        pre = cls(transforms)
        for t, entry in zip(transforms, state["transforms"]):
            if isinstance(t, Sequence) and t.vocabulary is not None:
                t._shared = pre._by_name[t.vocabulary]
            if entry["state"] is not None:
                t.load_state(entry["state"])
        return pre

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the state as JSON (to a temporary file, then renamed)."""
        write_text_atomically(path, json.dumps(self.state_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Preprocessor:
        return cls.from_state_dict(json.loads(Path(path).read_text()))


def _binary_label(values: np.ndarray, name: str) -> np.ndarray:
    try:
        y = values.astype(np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"label column {name!r} is not numeric (dtype {values.dtype})") from None
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        raise ValueError(f"label column {name!r} must hold 0 or 1 for a binary task; found "
                         f"{np.unique(y[bad])[:5].tolist()} in {int(bad.sum())} row(s)")
    return y


