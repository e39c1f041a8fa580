"""``Interactions``: user-item interactions in CSR form, with the external ids kept for the way back.

Rows are users, columns items. ``indptr`` is int64 [n_users + 1], ``indices`` int32 item ids strictly increasing within
each row (binary-searchable, no duplicates), ``values`` float32, ``timestamps`` int64 or None, aligned with
``indices``. ``user_ids[u]`` / ``item_ids[i]`` are the external ids of internal user u / item i.

Instances are treated as immutable: methods return new objects and may share arrays with the original.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from fastrec._atomic import atomic_open
from fastrec.data import _csr
from fastrec.data._ids import IdSpec, as_1d, check_finite, check_ids_int, lookup, map_ids, show

__all__ = ["DUPLICATE_POLICIES", "Interactions"]

DUPLICATE_POLICIES = {"sum": _csr.POLICY_SUM, "first": _csr.POLICY_FIRST, "last": _csr.POLICY_LAST,
                      "max": _csr.POLICY_MAX}
_FORMAT_VERSION = 1


def _ids_for_save(name: str, ids: np.ndarray) -> np.ndarray:
    """External ids as a pickle-free array (ints, floats or unicode strings)."""
    if ids.dtype.kind in "iufUS":
        return ids
    vals = ids.tolist()
    if all(isinstance(v, str) for v in vals):
        return np.array(vals, dtype=str) if vals else np.zeros(0, dtype="U1")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
        return np.array(vals, dtype=np.int64)
    kinds = sorted({type(v).__name__ for v in vals})
    raise TypeError(f"{name}: only int or str external ids can be saved, got types {kinds}")


class Interactions:
    """User-item interactions in CSR storage.

    Build with :meth:`from_arrays`, :meth:`from_dataframe` or :meth:`from_scipy`; the constructor takes CSR arrays
    that already satisfy the invariants (checked unless ``check=False``).
    """

    __slots__ = ("indptr", "indices", "values", "timestamps", "user_ids", "item_ids", "_rowids")

    def __init__(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        *,
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
        n_items: int | None = None,
        check: bool = True,
    ) -> None:
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        nnz = self.indices.shape[0]
        self.values = (np.ones(nnz, np.float32) if values is None
                       else np.ascontiguousarray(values, dtype=np.float32))
        self.timestamps = None if timestamps is None else np.ascontiguousarray(timestamps, dtype=np.int64)
        n_users = self.indptr.shape[0] - 1
        if item_ids is None:
            if n_items is None:
                n_items = int(self.indices.max()) + 1 if nnz else 0
            item_ids = np.arange(n_items, dtype=np.int64)
        elif n_items is not None and n_items != len(item_ids):
            raise ValueError(f"n_items={n_items} disagrees with len(item_ids)={len(item_ids)}")
        self.user_ids = np.arange(n_users, dtype=np.int64) if user_ids is None else np.asarray(user_ids)
        self.item_ids = np.asarray(item_ids)
        self._rowids: np.ndarray | None = None
        if check:
            self._check()

    def _check(self) -> None:
        if self.indptr.ndim != 1 or self.indptr.shape[0] < 1:
            raise ValueError(f"indptr must be 1-d with at least one entry, got shape {self.indptr.shape}")
        nnz = self.indices.shape[0]
        if self.indptr[0] != 0 or self.indptr[-1] != nnz:
            raise ValueError(f"indptr must start at 0 and end at len(indices)={nnz}, "
                             f"got {self.indptr[0]} and {self.indptr[-1]}")
        if self.values.shape != (nnz,):
            raise ValueError(f"values has shape {self.values.shape}, expected ({nnz},)")
        if self.timestamps is not None and self.timestamps.shape != (nnz,):
            raise ValueError(f"timestamps has shape {self.timestamps.shape}, expected ({nnz},)")
        if len(self.user_ids) != self.n_users:
            raise ValueError(f"len(user_ids)={len(self.user_ids)} but indptr describes {self.n_users} users")
        check_finite("values", self.values)
        bad = _csr.check_csr(self.indptr, self.indices, self.n_items)
        if bad >= 0:
            row = self.indices[self.indptr[bad]:self.indptr[bad + 1]]
            raise ValueError(f"row {bad} is not strictly increasing item ids in [0, {self.n_items}): {row[:10]}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        users: Any,
        items: Any,
        values: Any = None,
        timestamps: Any = None,
        *,
        duplicates: str = "error",
        user_ids: IdSpec = None,
        item_ids: IdSpec = None,
        n_users: int | None = None,
        n_items: int | None = None,
        unknown: str = "error",
    ) -> Interactions:
        """Builds CSR storage from parallel arrays of (user, item[, value][, timestamp]) entries.

        Args:
            users, items: external ids (integers >= 0, strings, or any hashable in an object array).
            values: per-entry values (default 1.0); must be finite.
            timestamps: per-entry integer times (integral floats accepted), kept aligned with the entries.
            duplicates: what to do with repeated (user, item) pairs: ``"error"`` (default) raises naming the first
                one; ``"sum"`` adds the values (timestamp: the latest); ``"max"`` keeps the largest value
                (timestamp: the latest); ``"first"`` / ``"last"`` keep the whole earliest / latest entry (by
                timestamp when given, ties and otherwise by input order).
            user_ids, item_ids: None (dense ids in sorted external-id order), ``"identity"`` (ids are kept; the
                count is ``n_users`` / ``n_items`` or max + 1) or an array of external ids to map into (e.g. a
                training set's ``item_ids``, so that train and test share one id space).
            n_users, n_items: the row / column counts for ``"identity"`` ids (or a check for the other modes).
            unknown: ``"error"`` or ``"drop"``: entries whose id is outside a given id space.
        """
        if duplicates != "error" and duplicates not in DUPLICATE_POLICIES:
            raise ValueError(f"duplicates must be one of 'error', {', '.join(map(repr, DUPLICATE_POLICIES))}; "
                             f"got {duplicates!r}")
        u = check_ids_int("users", as_1d("users", users))
        i = check_ids_int("items", as_1d("items", items))
        n = u.shape[0]
        if i.shape[0] != n:
            raise ValueError(f"users and items must have the same length, got {n} and {i.shape[0]}")
        v = None
        if values is not None:
            v = as_1d("values", values)
            if v.shape[0] != n:
                raise ValueError(f"values must have the length of users ({n}), got {v.shape[0]}")
            if v.dtype.kind not in "fiub":
                raise TypeError(f"values must be numeric, got dtype {v.dtype}")
            check_finite("values", v)
            with np.errstate(over="ignore"):
                v = v.astype(np.float32, copy=False)
            check_finite("values (as float32)", v)
        t = None
        if timestamps is not None:
            t = as_1d("timestamps", timestamps)
            if t.shape[0] != n:
                raise ValueError(f"timestamps must have the length of users ({n}), got {t.shape[0]}")
            if t.dtype.kind == "f":
                check_finite("timestamps", t)
                frac = t != np.floor(t)
                if frac.any():
                    k = int(np.flatnonzero(frac)[0])
                    raise ValueError(f"timestamps must be integers: timestamps[{k}] = {show(t[k])} "
                                     "(scale them, e.g. to milliseconds, first)")
            elif t.dtype.kind not in "iu":
                raise TypeError(f"timestamps must be integers, got dtype {t.dtype}")
            t = t.astype(np.int64, copy=False)
        if n == 0:
            raise ValueError("empty input: users and items have length 0")
        ucodes, utable, ukeep = map_ids("users", u, user_ids, n_users, "n_users", unknown)
        icodes, itable, ikeep = map_ids("items", i, item_ids, n_items, "n_items", unknown)
        keep = ukeep if ikeep is None else (ikeep if ukeep is None else ukeep & ikeep)
        if keep is not None:
            ucodes, icodes = ucodes[keep], icodes[keep]
            v = None if v is None else v[keep]
            t = None if t is None else t[keep]
        return cls._build(ucodes, icodes, v, t, utable, itable, duplicates)

    @classmethod
    def _build(cls, rows: np.ndarray, cols: np.ndarray, values: np.ndarray | None, timestamps: np.ndarray | None,
               user_ids: np.ndarray, item_ids: np.ndarray, duplicates: str) -> Interactions:
        """CSR from dense internal ids (already validated)."""
        n_rows, n_cols = len(user_ids), len(item_ids)
        if n_rows >= 2**31 or n_cols >= 2**31:
            raise ValueError(f"at most 2**31-1 users and items are supported, got {n_rows} and {n_cols}")
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        cols = np.ascontiguousarray(cols, dtype=np.int32)
        vals = np.zeros(0, np.float32) if values is None else np.ascontiguousarray(values, dtype=np.float32)
        ts = np.zeros(0, np.int64) if timestamps is None else np.ascontiguousarray(timestamps, dtype=np.int64)
        shift, n_chunks = _radix_plan(rows.shape[0], n_rows)
        indptr, indices, out_v, out_t, n_dups = _csr.build_csr(rows, cols, vals, ts, n_rows, shift, n_chunks)
        if n_dups:
            if duplicates == "error":
                r, c = _csr.first_duplicate(indptr, indices)
                raise ValueError(
                    f"{n_dups} duplicate (user, item) entries, e.g. user {show(user_ids[r])} item "
                    f"{show(item_ids[c])}; pass duplicates='sum', 'max', 'first' or 'last'")
            indptr, indices, out_v, out_t = _csr.dedup_rows(indptr, indices, out_v, out_t,
                                                             DUPLICATE_POLICIES[duplicates])
            return cls(indptr, indices, out_v, None if timestamps is None else out_t,
                       user_ids=user_ids, item_ids=item_ids, check=False)
        return cls(indptr, indices, None if values is None else out_v, None if timestamps is None else out_t,
                   user_ids=user_ids, item_ids=item_ids, check=False)

    @classmethod
    def from_dataframe(
        cls,
        df: Any,
        user_col: str = "user_id",
        item_col: str = "item_id",
        value_col: str | None = None,
        time_col: str | None = None,
        **kwargs: Any,
    ) -> Interactions:
        """From a pandas DataFrame (or any mapping of column name -> array); kwargs go to :meth:`from_arrays`."""
        cols = [c for c in (user_col, item_col, value_col, time_col) if c is not None]
        missing = [c for c in cols if c not in df]
        if missing:
            have = list(df.columns) if hasattr(df, "columns") else list(df)
            raise KeyError(f"column(s) {missing} not in the data frame; columns are {have}")

        def col(name: str | None) -> np.ndarray | None:
            if name is None:
                return None
            c = df[name]
            return c.to_numpy() if hasattr(c, "to_numpy") else np.asarray(c)

        return cls.from_arrays(col(user_col), col(item_col), col(value_col), col(time_col), **kwargs)

    @classmethod
    def from_scipy(cls, matrix: Any, *, user_ids: Any = None, item_ids: Any = None,
                   duplicates: str = "sum") -> Interactions:
        """From a scipy sparse matrix or array (users x items). Explicit zeros are kept as entries; duplicate
        entries of a COO input are merged by ``duplicates`` (scipy's own convention is to sum)."""
        import scipy.sparse as sp

        if not sp.issparse(matrix):
            raise TypeError(f"matrix must be a scipy sparse matrix, got {type(matrix).__name__}")
        n_users, n_items = matrix.shape
        coo = matrix.tocoo()
        data = np.asarray(coo.data)
        if data.dtype.kind not in "fiub":
            raise TypeError(f"matrix values must be numeric, got dtype {data.dtype}")
        check_finite("matrix values", data)
        if duplicates != "error" and duplicates not in DUPLICATE_POLICIES:
            raise ValueError(f"duplicates must be one of 'error', {', '.join(map(repr, DUPLICATE_POLICIES))}; "
                             f"got {duplicates!r}")
        uids = np.arange(n_users, dtype=np.int64) if user_ids is None else as_1d("user_ids", user_ids)
        iids = np.arange(n_items, dtype=np.int64) if item_ids is None else as_1d("item_ids", item_ids)
        if len(uids) != n_users or len(iids) != n_items:
            raise ValueError(f"user_ids / item_ids lengths ({len(uids)}, {len(iids)}) must match the matrix shape "
                             f"{matrix.shape}")
        return cls._build(coo.row.astype(np.int64), coo.col.astype(np.int64), data.astype(np.float32), None,
                          uids, iids, duplicates)

    # ------------------------------------------------------------------ basic properties
    @property
    def n_users(self) -> int:
        return self.indptr.shape[0] - 1

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def nnz(self) -> int:
        return self.indices.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_users, self.n_items

    def __len__(self) -> int:
        return self.nnz

    def __repr__(self) -> str:
        ts = ", timestamps" if self.timestamps is not None else ""
        return f"Interactions({self.n_users} users x {self.n_items} items, {self.nnz} entries{ts})"

    def row(self, u: int) -> np.ndarray:
        """Item ids of internal user ``u`` (a sorted int32 view)."""
        if not 0 <= u < self.n_users:
            raise IndexError(f"user {u} out of range [0, {self.n_users})")
        return self.indices[self.indptr[u]:self.indptr[u + 1]]

    def row_values(self, u: int) -> np.ndarray:
        """Values of internal user ``u``, aligned with :meth:`row`."""
        if not 0 <= u < self.n_users:
            raise IndexError(f"user {u} out of range [0, {self.n_users})")
        return self.values[self.indptr[u]:self.indptr[u + 1]]

    def user_degrees(self) -> np.ndarray:
        """Number of items of each user (int64 [n_users])."""
        return np.diff(self.indptr)

    def item_popularity(self, weighted: bool = False) -> np.ndarray:
        """Number of users of each item (int64 [n_items]); with ``weighted``, the sum of values (float64)."""
        if weighted:
            return np.bincount(self.indices, weights=self.values, minlength=self.n_items)
        return np.bincount(self.indices, minlength=self.n_items).astype(np.int64)

    def rowids(self) -> np.ndarray:
        """The internal user id of every entry (int32 when it fits, else int64), cached."""
        if self._rowids is None:
            dtype = np.int32 if self.n_users < 2**31 else np.int64
            self._rowids = np.repeat(np.arange(self.n_users, dtype=dtype), self.user_degrees())
        return self._rowids

    def to_coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, items, values) per entry, in CSR order, internal ids."""
        return self.rowids(), self.indices, self.values

    def to_scipy(self, copy: bool = False) -> Any:
        """A scipy.sparse.csr_matrix (float32, users x items) sharing or copying the arrays."""
        import scipy.sparse as sp

        m = sp.csr_matrix((self.values, self.indices, self.indptr), shape=self.shape, copy=copy)
        m.has_sorted_indices = True
        return m

    def to_torch(self) -> Any:
        """A torch sparse CSR tensor (float32 values, int64 crow/col indices), users x items."""
        import torch

        with warnings.catch_warnings():  # torch's "sparse CSR support is in beta" notice, once per process
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                torch.from_numpy(self.indptr), torch.from_numpy(self.indices.astype(np.int64)),
                torch.from_numpy(self.values), size=self.shape, check_invariants=False)

    def user_index(self, ids: Any) -> np.ndarray:
        """Internal ids of external user ids (-1 where unknown)."""
        return lookup(self.user_ids, _query(ids, self.user_ids))

    def item_index(self, ids: Any) -> np.ndarray:
        """Internal ids of external item ids (-1 where unknown)."""
        return lookup(self.item_ids, _query(ids, self.item_ids))

    def equals(self, other: Interactions) -> bool:
        """Exact equality of all arrays and id maps."""
        if not isinstance(other, Interactions):
            return False
        if (self.timestamps is None) != (other.timestamps is None):
            return False
        same = (np.array_equal(self.indptr, other.indptr) and np.array_equal(self.indices, other.indices)
                and np.array_equal(self.values, other.values)
                and (self.timestamps is None or np.array_equal(self.timestamps, other.timestamps)))
        return bool(same and _ids_equal(self.user_ids, other.user_ids) and _ids_equal(self.item_ids, other.item_ids))

    # ------------------------------------------------------------------ derived data
    def select(self, mask: np.ndarray) -> Interactions:
        """The entries where ``mask`` (bool [nnz]) is True, same id space."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.nnz,):
            raise ValueError(f"mask must have shape ({self.nnz},), got {mask.shape}")
        counts = np.bincount(self.rowids()[mask], minlength=self.n_users)
        indptr = np.zeros(self.n_users + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        ts = None if self.timestamps is None else self.timestamps[mask]
        return Interactions(indptr, self.indices[mask], self.values[mask], ts, user_ids=self.user_ids,
                            item_ids=self.item_ids, check=False)

    def binarize(self, threshold: float | None = None) -> Interactions:
        """Entries with value >= threshold (all entries if None), with value 1.0."""
        out = self if threshold is None else self.select(self.values >= threshold)
        return Interactions(out.indptr, out.indices, None, out.timestamps, user_ids=out.user_ids,
                            item_ids=out.item_ids, check=False)

    def compact(self) -> Interactions:
        """Drops users and items without entries and renumbers the rest densely (order kept)."""
        keep_users = self.user_degrees() > 0
        pop = self.item_popularity()
        keep_items = pop > 0
        new_item = np.cumsum(keep_items, dtype=np.int64) - 1
        indptr = np.concatenate([[0], self.indptr[1:][keep_users]]).astype(np.int64)
        return Interactions(indptr, new_item[self.indices].astype(np.int32), self.values, self.timestamps,
                            user_ids=self.user_ids[keep_users], item_ids=self.item_ids[keep_items], check=False)

    def kcore(self, min_user: int = 1, min_item: int = 1, *, compact: bool = True, max_iter: int = 1000) -> Interactions:
        """Iteratively removes users with fewer than ``min_user`` and items with fewer than ``min_item`` entries
        until none is left (the k-core); with ``compact`` the survivors are renumbered densely."""
        if min_user < 0 or min_item < 0:
            raise ValueError(f"min_user and min_item must be >= 0, got {min_user} and {min_item}")
        rowids = self.rowids()
        alive = np.ones(self.nnz, bool)
        for _ in range(max_iter):
            udeg = np.bincount(rowids[alive], minlength=self.n_users)
            ideg = np.bincount(self.indices[alive], minlength=self.n_items)
            drop = alive & ((udeg[rowids] < min_user) | (ideg[self.indices] < min_item))
            if not drop.any():
                break
            alive &= ~drop
        else:
            raise RuntimeError(f"kcore did not converge in {max_iter} iterations")
        out = self.select(alive)
        return out.compact() if compact else out

    def sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-user item sequences in time order (timestamp, then item id), jagged: (offsets int64 [n_users+1],
        items int32 [nnz]); user u's sequence is ``items[offsets[u]:offsets[u+1]]``. Needs timestamps."""
        if self.timestamps is None:
            raise ValueError("sequences() needs timestamps (load line files with positions_as_timestamps=True)")
        order = np.lexsort((self.indices, self.timestamps, self.rowids()))
        return self.indptr.copy(), self.indices[order]

    def padded_sequences(self, max_len: int, pad: int = -1, side: str = "left") -> np.ndarray:
        """The last ``max_len`` items of each user's time-ordered sequence, int64 [n_users, max_len], padded with
        ``pad`` on the ``side`` ("left": most recent item in the last column, as SASRec's input)."""
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        offsets, items = self.sequences()
        out = np.full((self.n_users, max_len), pad, np.int64)
        lengths = np.minimum(np.diff(offsets), max_len)
        starts = offsets[1:] - lengths
        # position of each kept entry inside its row of `out`
        rows = np.repeat(np.arange(self.n_users), lengths)
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        src = np.repeat(starts, lengths) + within
        col = within + (max_len - np.repeat(lengths, lengths) if side == "left" else 0)
        out[rows, col] = items[src]
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes one ``.npz`` file (uncompressed) at exactly ``path``, atomically: the data go to a temporary file
        in the same folder that then replaces ``path``, so a failed write leaves an existing file intact."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(_FORMAT_VERSION),
            "indptr": self.indptr, "indices": self.indices, "values": self.values,
            "user_ids": _ids_for_save("user_ids", self.user_ids),
            "item_ids": _ids_for_save("item_ids", self.item_ids),
        }
        if self.timestamps is not None:
            arrays["timestamps"] = self.timestamps
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Interactions:
        """Reads a file written by :meth:`save` (checked on the way in)."""
        with np.load(path, allow_pickle=False) as z:
            version = int(z["format_version"]) if "format_version" in z else None
            if version != _FORMAT_VERSION:
                raise ValueError(f"{path}: not a fastrec Interactions file (format_version {version})")
            ts = z["timestamps"] if "timestamps" in z else None
            return cls(z["indptr"], z["indices"], z["values"], ts, user_ids=z["user_ids"], item_ids=z["item_ids"])


def _radix_plan(n: int, n_rows: int) -> tuple[int, int]:
    """(shift, n_chunks) for build_csr: blocks of 2**shift rows holding about 256k entries each (pass 2 sorts a
    block inside the cache; bigger blocks mean fewer output streams in pass 1: measured best at 2**12-2**15 rows of
    50 entries), and one input chunk per thread once the input is large enough to pay for threads."""
    import numba

    per_row = max(n / max(n_rows, 1), 1e-9)
    shift = int(np.clip(np.floor(np.log2(262144 / per_row)), 0, 30))
    n_chunks = numba.get_num_threads() if n >= 1 << 20 else 1
    return shift, n_chunks


def _ids_equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "O" or b.dtype.kind == "O":
        return a.tolist() == b.tolist()
    return a.dtype.kind == b.dtype.kind and bool(np.array_equal(a, b))


def _query(ids: Any, table: np.ndarray) -> np.ndarray:
    if table.dtype.kind == "O":
        q = np.empty(len(ids) if isinstance(ids, (list, tuple, np.ndarray)) else 1, dtype=object)
        q[:] = list(ids) if isinstance(ids, (list, tuple, np.ndarray)) else [ids]
        return q
    return np.asarray(ids).ravel()
