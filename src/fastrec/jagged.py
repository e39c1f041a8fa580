"""KeyedJagged: a batch of variable-length id lists for several features, feature-major like TorchRec's
KeyedJaggedTensor, so that users can hand fastrec what they already build for TorchRec."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["KeyedJagged"]


class KeyedJagged:
    """Ids of F features for a batch of B examples.

    ``values`` holds the ids of feature 0 for examples 0..B-1, then feature 1, and so on; bag ``f * B + b`` is
    ``values[offsets[f*B+b] : offsets[f*B+b+1]]``. Give either ``lengths`` (F*B bag sizes) or ``offsets``
    (F*B + 1 entries from 0 to len(values)); ``weights`` optionally weighs each id (float32, same length as values).

    Example: keys ``["user", "tags"]``, B=2, user ids [7], [3] and tags [1, 2], [] ->
    ``KeyedJagged(["user", "tags"], torch.tensor([7, 3, 1, 2]), lengths=torch.tensor([1, 1, 2, 0]))``.
    """

    def __init__(
        self,
        keys: Sequence[str],
        values: Tensor,
        lengths: Tensor | None = None,
        offsets: Tensor | None = None,
        weights: Tensor | None = None,
    ) -> None:
        self.keys = list(keys)
        if not self.keys:
            raise ValueError("KeyedJagged: keys must name at least one feature")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"KeyedJagged: keys must be unique, got {self.keys}")
        if not isinstance(values, Tensor) or values.dim() != 1 or values.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"KeyedJagged: values must be a 1-D int64 or int32 tensor, got {_describe(values)}")
        if (lengths is None) == (offsets is None):
            raise ValueError("KeyedJagged: give exactly one of lengths and offsets")
        if lengths is not None:
            if lengths.dim() != 1 or lengths.numel() % len(self.keys):
                raise ValueError(f"KeyedJagged: lengths must be 1-D with len(keys) * batch_size entries, got shape "
                                 f"{tuple(lengths.shape)} for {len(self.keys)} keys")
            if lengths.numel() and int(lengths.min()) < 0:
                raise ValueError(f"KeyedJagged: lengths must be >= 0, got {int(lengths.min())}")
            offsets = torch.zeros(lengths.numel() + 1, dtype=values.dtype, device=values.device)
            torch.cumsum(lengths, 0, out=offsets[1:])
        assert offsets is not None
        if offsets.dim() != 1 or (offsets.numel() - 1) % len(self.keys):
            raise ValueError(f"KeyedJagged: offsets must be 1-D with len(keys) * batch_size + 1 entries, got shape "
                             f"{tuple(offsets.shape)} for {len(self.keys)} keys")
        if int(offsets[-1]) != values.numel():
            raise ValueError(f"KeyedJagged: the bags cover {int(offsets[-1])} ids but values has {values.numel()}")
        if weights is not None and (weights.shape != values.shape or weights.dtype != torch.float32):
            raise ValueError(f"KeyedJagged: weights must be float32 of shape {tuple(values.shape)}, got "
                             f"{_describe(weights)}")
        self.values = values
        self.offsets = offsets.to(values.dtype)
        self.weights = weights

    @property
    def batch_size(self) -> int:
        return (self.offsets.numel() - 1) // len(self.keys)

    @property
    def lengths(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def feature_range(self, index: int) -> tuple[int, int]:
        """[start, end) of feature ``index``'s ids in ``values``."""
        batch = self.batch_size
        return int(self.offsets[index * batch]), int(self.offsets[(index + 1) * batch])

    def __repr__(self) -> str:
        return f"KeyedJagged(keys={self.keys}, batch_size={self.batch_size}, num_ids={self.values.numel()})"


def _describe(x: object) -> str:
    return f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
