"""Feature specifications: what a CTR model's input holds, column by column.

A batch is a ``dict`` feature name -> tensor:

- :class:`SparseFeature`: int64 ``[B]``, one categorical id per row in ``[0, vocab_size)``;
- :class:`MultiHotFeature`: int64 ``[B, L]``, a bag of ids per row padded with ``-1``; pooled by sum or mean;
  with ``weighted=True`` the float32 ``[B, L]`` weights of each id come under the key :attr:`weight_key`
  (the weighted sum is the pooled vector);
- :class:`DenseFeature`: float32 ``[B]`` (``dim == 1``) or ``[B, dim]``;
- :class:`SequenceFeature`: int64 ``[B, max_len]``, an ordered id list per row (oldest first), padded with ``-1``
  at the end; models get one vector per position and a padding mask (DIN, BST).

Features that name the same ``table`` share one embedding table (e.g. the candidate item and the behaviour
sequence): the table has the largest ``vocab_size`` of its features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "DenseFeature",
    "Feature",
    "MultiHotFeature",
    "SequenceFeature",
    "SparseFeature",
    "check_features",
    "feature_from_dict",
    "feature_to_dict",
]


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind}: name must be a non-empty string, got {name!r}")


def _check_vocab(kind: str, name: str, vocab_size: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"{kind} {name!r}: vocab_size must be an int >= 1, got {vocab_size!r}")


@dataclass(frozen=True)
class SparseFeature:
    """A categorical feature, one id per row.

    Args:
        name: the batch key.
        vocab_size: ids lie in ``[0, vocab_size)`` (the preprocessors reserve id 0 for out-of-vocabulary values).
        table: the embedding table's name (default: ``name``); features with the same table share it.
    """

    name: str
    vocab_size: int
    table: str | None = None

    def __post_init__(self) -> None:
        _check_name("SparseFeature", self.name)
        _check_vocab("SparseFeature", self.name, self.vocab_size)

    @property
    def table_name(self) -> str:
        return self.table or self.name


@dataclass(frozen=True)
class MultiHotFeature:
    """A bag of categorical ids per row (genres, tags), pooled into one vector.

    Args:
        name: the batch key (int64 ``[B, L]``, padded with -1).
        vocab_size: ids lie in ``[0, vocab_size)``.
        pooling: ``"mean"`` or ``"sum"`` over the bag (an empty bag gives a zero vector).
        weighted: the batch carries float32 ``[B, L]`` weights under :attr:`weight_key`; pooling must be "sum".
        table: the embedding table's name (default: ``name``).
    """

    name: str
    vocab_size: int
    pooling: str = "mean"
    weighted: bool = False
    table: str | None = None

    def __post_init__(self) -> None:
        _check_name("MultiHotFeature", self.name)
        _check_vocab("MultiHotFeature", self.name, self.vocab_size)
        if self.pooling not in ("sum", "mean"):
            raise ValueError(f"MultiHotFeature {self.name!r}: pooling must be 'sum' or 'mean', got {self.pooling!r}")
        if self.weighted and self.pooling != "sum":
            raise ValueError(f"MultiHotFeature {self.name!r}: weighted bags need pooling='sum' (a weighted sum), got "
                             f"{self.pooling!r}")

    @property
    def table_name(self) -> str:
        return self.table or self.name

    @property
    def weight_key(self) -> str:
        return f"{self.name}__weight"


@dataclass(frozen=True)
class DenseFeature:
    """A numeric feature of ``dim`` values per row.

    Models concatenate dense values to their deep part's input; FM-family models can instead treat each value as a
    field with its own embedding ``x_i * v_i`` (Rendle's FM; ``dense_as_fields=True`` where a model offers it).
    """

    name: str
    dim: int = 1

    def __post_init__(self) -> None:
        _check_name("DenseFeature", self.name)
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"DenseFeature {self.name!r}: dim must be an int >= 1, got {self.dim!r}")


@dataclass(frozen=True)
class SequenceFeature:
    """An ordered list of ids per row (a user's behaviour sequence), oldest first, padded with -1 at the end.

    Args:
        name: the batch key (int64 ``[B, max_len]``).
        vocab_size: ids lie in ``[0, vocab_size)``.
        max_len: positions per row.
        table: the embedding table's name; set it to the candidate item's table to share embeddings (DIN, BST).
    """

    name: str
    vocab_size: int
    max_len: int
    table: str | None = None

    def __post_init__(self) -> None:
        _check_name("SequenceFeature", self.name)
        _check_vocab("SequenceFeature", self.name, self.vocab_size)
        if isinstance(self.max_len, bool) or not isinstance(self.max_len, int) or self.max_len < 1:
            raise ValueError(f"SequenceFeature {self.name!r}: max_len must be an int >= 1, got {self.max_len!r}")

    @property
    def table_name(self) -> str:
        return self.table or self.name


Feature = SparseFeature | MultiHotFeature | DenseFeature | SequenceFeature
_KINDS: dict[str, type] = {c.__name__: c for c in (SparseFeature, MultiHotFeature, DenseFeature, SequenceFeature)}


def feature_to_dict(feature: Feature) -> dict[str, Any]:
    """A plain dict (for save files) that :func:`feature_from_dict` turns back into the spec."""
    return {"kind": type(feature).__name__, **asdict(feature)}


def feature_from_dict(d: Mapping[str, Any]) -> Feature:
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[kind](**d)


def check_features(features: Sequence[Feature], who: str) -> list[Feature]:
    """Validates a feature list for a model: specs only, unique names, at least one."""
    features = list(features)
    if not features:
        raise ValueError(f"{who}: features must list at least one feature spec")
    for f in features:
        if not isinstance(f, tuple(_KINDS.values())):
            raise TypeError(f"{who}: features must be SparseFeature, MultiHotFeature, DenseFeature or "
                            f"SequenceFeature specs, got {type(f).__name__}")
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ValueError(f"{who}: feature names must be unique, got {names}")
    return features
