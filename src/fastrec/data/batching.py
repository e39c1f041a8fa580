"""Batch iterators that feed torch training loops; negatives are sampled in numba per batch, never per item in Python.

- :class:`TripletBatches`: (users, positives, negatives [B, n_neg]) for pairwise losses (BPR, sampled softmax);
- :class:`PointwiseBatches`: (users, items, labels) with each positive followed by its ``n_neg`` negatives (label 0);
- :class:`CTRBatches`: rows of a :class:`~fastrec.data.loaders.CTRData` file: fixed-width feature ids [B, F]
  (one-hot fields) or EmbeddingBag-style (flat ids, offsets), values and labels.

Each is a ``torch.utils.data.IterableDataset`` whose items are whole batches: use it directly, or in
``DataLoader(ds, batch_size=None, num_workers=N)``, where worker w takes batches w, w + N, ... Batch contents depend
only on (seed, epoch, batch index), not on the number of workers or threads. Iterating again starts the next epoch
(reshuffled); :meth:`set_epoch` picks one explicitly (e.g. to resume).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from fastrec.data.interactions import Interactions
from fastrec.data.loaders import CTRData
from fastrec.data.samplers import NegativeSampler

__all__ = ["CTRBatches", "PointwiseBatches", "TripletBatches"]


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(epoch)]).generate_state(1, np.uint64)[0])


class _EpochBatches(IterableDataset):
    """Shared epoch / shuffling / worker-sharding logic over ``n`` rows."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if n == 0:
            raise ValueError("empty input: nothing to batch")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration runs (its shuffle and negatives)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The row order of an epoch."""
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        return np.random.default_rng(_epoch_seed(self.seed, epoch)).permutation(self.n)

    def __iter__(self) -> Iterator[Any]:
        epoch = self.epoch
        self.epoch += 1
        info = get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        return self.epoch_batches(epoch, wid, nw)

    def epoch_batches(self, epoch: int, worker: int = 0, n_workers: int = 1) -> Iterator[Any]:
        """The batches of ``epoch`` that worker ``worker`` of ``n_workers`` yields (batch indices worker, worker +
        n_workers, ...)."""
        order = self.order(epoch)
        eseed = _epoch_seed(self.seed, epoch)
        for b in range(worker, len(self), n_workers):
            lo = b * self.batch_size
            yield self._make(order[lo:min(lo + self.batch_size, self.n)], lo, eseed)

    def _make(self, rows: np.ndarray, start: int, eseed: int) -> Any:
        raise NotImplementedError


class TripletBatches(_EpochBatches):
    """(users int64 [B], positives int64 [B], negatives int64 [B, n_neg]) over all entries of ``interactions``,
    each entry once per epoch.

    Args:
        interactions: the positives (and the items excluded from each user's negatives, unless ``sampler`` says
            otherwise).
        batch_size, shuffle, drop_last, seed: as in torch's DataLoader; ``seed`` also keys the negatives.
        n_neg: negatives per positive.
        sampler: a :class:`NegativeSampler` (default: uniform over the non-positives of ``interactions``).
    """

    def __init__(self, interactions: Interactions, *, batch_size: int = 4096, n_neg: int = 1,
                 sampler: NegativeSampler | None = None, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0) -> None:
        if not isinstance(interactions, Interactions):
            raise TypeError(f"interactions must be Interactions, got {type(interactions).__name__}")
        if isinstance(n_neg, bool) or not isinstance(n_neg, (int, np.integer)) or n_neg < 1:
            raise ValueError(f"n_neg must be an integer >= 1, got {n_neg!r}")
        super().__init__(interactions.nnz, batch_size, shuffle, drop_last, seed)
        self.interactions = interactions
        self.n_neg = int(n_neg)
        self.sampler = NegativeSampler(interactions) if sampler is None else sampler
        if self.sampler.positives.shape != interactions.shape:
            raise ValueError(f"sampler positives have shape {self.sampler.positives.shape}, interactions "
                             f"{interactions.shape}: they must share one id space")
        self._rows = interactions.rowids()

    def _triplet(self, rows: np.ndarray, start: int, eseed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        users = self._rows[rows].astype(np.int64)
        pos = self.interactions.indices[rows].astype(np.int64)
        neg = self.sampler.sample(users, self.n_neg, seed=eseed, offset=start * self.n_neg)
        return users, pos, neg

    def _make(self, rows: np.ndarray, start: int, eseed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        users, pos, neg = self._triplet(rows, start, eseed)
        return torch.from_numpy(users), torch.from_numpy(pos), torch.from_numpy(neg.astype(np.int64))


class PointwiseBatches(TripletBatches):
    """(users int64 [B * (1 + n_neg)], items int64, labels float32): each positive (label 1) followed by its
    ``n_neg`` sampled negatives (label 0). Same arguments as :class:`TripletBatches`."""

    def _make(self, rows: np.ndarray, start: int, eseed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        users, pos, neg = self._triplet(rows, start, eseed)
        k = 1 + self.n_neg
        items = np.empty((users.shape[0], k), np.int64)
        items[:, 0] = pos
        items[:, 1:] = neg
        labels = np.zeros((users.shape[0], k), np.float32)
        labels[:, 0] = 1.0
        return (torch.from_numpy(np.repeat(users, k)), torch.from_numpy(items.ravel()),
                torch.from_numpy(labels.ravel()))


class CTRBatches(_EpochBatches):
    """Batches of CTR rows. With one feature per field in every row (``data.fixed_width()``), yields
    (ids int64 [B, F], values float32 [B, F], labels float32 [B]); otherwise EmbeddingBag-style
    (ids int64 [nnz], offsets int64 [B + 1], values float32 [nnz], labels float32 [B]).
    ``binary_labels`` maps labels to 0/1 (label > 0), e.g. for libFM's -1/1."""

    def __init__(self, data: CTRData, *, batch_size: int = 4096, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0, binary_labels: bool = True) -> None:
        if not isinstance(data, CTRData):
            raise TypeError(f"data must be CTRData, got {type(data).__name__}")
        super().__init__(len(data), batch_size, shuffle, drop_last, seed)
        self.data = data
        self.width = data.fixed_width()
        self.labels = data.binary_labels() if binary_labels else data.labels
        if self.width is not None:
            self._ids = data.indices.reshape(-1, self.width)
            self._vals = data.values.reshape(-1, self.width)

    def _make(self, rows: np.ndarray, start: int, eseed: int) -> tuple[torch.Tensor, ...]:
        labels = torch.from_numpy(self.labels[rows])
        if self.width is not None:
            return torch.from_numpy(self._ids[rows]), torch.from_numpy(self._vals[rows]), labels
        lengths = np.diff(self.data.indptr)[rows]
        offsets = np.zeros(rows.shape[0] + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        src = np.repeat(self.data.indptr[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return (torch.from_numpy(self.data.indices[src]), torch.from_numpy(offsets),
                torch.from_numpy(self.data.values[src]), labels)
