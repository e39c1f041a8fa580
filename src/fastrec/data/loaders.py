"""Dataset loaders for the canonical file formats.

- ``user item item ...`` lines (LightGCN/NGCF ``train.txt``/``test.txt``, S3-Rec/SASRec ``Beauty.txt``):
  :func:`load_user_item_lines`;
- MovieLens ``u.data`` (tab), ``ratings.dat`` (``::``), ``ratings.csv`` (header): :func:`load_movielens`;
- RecBole atomic files (``.inter``, ``.user``, ``.item``: a ``name:type`` header, tab-separated):
  :func:`read_atomic`, :func:`load_recbole_inter`;
- session files (one session per line, or ``prefix<TAB>next_item`` lines): :func:`load_sessions`;
- libFM / libSVM files for CTR data (``label idx:val ...``): :func:`load_libsvm`;
- :func:`load` picks the loader from the file name, :func:`load_dataset` reads the datasets of a ``FASTREC_DATA``
  folder by name.

Integer files go through a numba tokenizer (one pass over the bytes); files with other tokens fall back to pandas
(when installed) or a plain Python parser. Loaders that return rows in file order (``read_*``) are what K-fold
splits over file rows need.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
import numpy as np

from fastrec.data._ids import IdSpec, factorize
from fastrec.data._parse import parse_int_lines
from fastrec.data.interactions import Interactions

__all__ = [
    "CTRData",
    "Sessions",
    "dataset_path",
    "load",
    "load_dataset",
    "load_libsvm",
    "load_movielens",
    "load_recbole_inter",
    "load_sessions",
    "load_user_item_lines",
    "read_atomic",
    "read_movielens",
    "read_user_item_lines",
]


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"path {str(p)!r} does not exist")
    if p.is_dir():
        raise IsADirectoryError(f"path {str(p)!r} is a folder, expected a file")
    return p.read_bytes()


def read_user_item_lines(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reads ``user item item ...`` lines.

    Returns (line_users [n_lines], users [n], items [n], positions [n]): the first id of every non-empty line, then
    one entry per item with its 0-based position within its line. Integer ids come back as int64, other tokens as
    strings (an object array).
    """
    data = _read_bytes(path)
    buf = np.frombuffer(data, dtype=np.uint8)
    tokens, line_start, _, err = parse_int_lines(buf, -1)
    if err < 0:
        line_users = tokens[line_start]
        line_end = np.append(line_start[1:], tokens.shape[0])
        lengths = line_end - line_start - 1
        is_item = np.ones(tokens.shape[0], bool)
        is_item[line_start] = False
        items = tokens[is_item]
    else:  # general tokens (string ids, signs): a plain Python parse
        text = data.decode("utf-8")
        lu: list[str] = []
        it: list[str] = []
        lens: list[int] = []
        for line in text.splitlines():
            parts = line.split()
            if parts:
                lu.append(parts[0])
                it.extend(parts[1:])
                lens.append(len(parts) - 1)
        line_users = _maybe_int(np.array(lu, dtype=object))
        items = _maybe_int(np.array(it, dtype=object))
        lengths = np.array(lens, dtype=np.int64)
    users = np.repeat(line_users, lengths)
    positions = np.arange(items.shape[0], dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return line_users, users, items, positions


def _maybe_int(tokens: np.ndarray) -> np.ndarray:
    """Integer tokens as int64 (a negative id then fails the id check with its value), others unchanged."""
    try:
        return np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        return tokens


def load_user_item_lines(
    path: str | os.PathLike[str],
    *,
    user_ids: IdSpec = None,
    item_ids: IdSpec = None,
    n_users: int | None = None,
    n_items: int | None = None,
    duplicates: str = "error",
    positions_as_timestamps: bool = False,
    unknown: str = "error",
) -> Interactions:
    """Loads a ``user item item ...`` file (one user per line) as :class:`Interactions` with values 1.

    Id spaces: by default users and items are numbered densely in sorted external-id order (users of lines without
    items included). A train/test pair must share one id space: either keep the file's ids as they are
    (``user_ids="identity", item_ids="identity"`` with ``n_users``/``n_items`` given, e.g. LightGCN's 0-based
    Gowalla files), or map the second file into the first one's ids (``user_ids=train.user_ids,
    item_ids=train.item_ids``; ids the first file lacks raise, or are dropped with ``unknown="drop"``).

    ``positions_as_timestamps`` stores each item's position in its line (0, 1, ...) as its timestamp, so that
    :meth:`Interactions.sequences` and the leave-one-out split see the file's order (S3-Rec/SASRec files are in time
    order). A user's repeated item raises unless ``duplicates`` says how to merge it.
    """
    line_users, users, items, positions = read_user_item_lines(path)
    if line_users.shape[0] == 0:
        raise ValueError(f"empty input: {str(path)!r} holds no user lines")
    if items.shape[0] == 0:
        raise ValueError(f"empty input: {str(path)!r} holds users but no items")
    if user_ids is None:
        # every user with a line belongs to the id space, also those whose line lists no items
        from fastrec.data._ids import check_ids_int

        _, user_ids = factorize("users", check_ids_int("users", line_users))
        if n_users is not None and n_users != user_ids.shape[0]:
            raise ValueError(f"n_users={n_users} given but {str(path)!r} holds {user_ids.shape[0]} distinct users; "
                             "pass user_ids='identity' to keep ids as they are")
        n_users = None
    elif isinstance(user_ids, str) and user_ids == "identity" and n_users is None and line_users.dtype.kind in "iu":
        n_users = int(line_users.max()) + 1
    return Interactions.from_arrays(
        users, items, None, positions if positions_as_timestamps else None, duplicates=duplicates,
        user_ids=user_ids, item_ids=item_ids, n_users=n_users, n_items=n_items, unknown=unknown)


# ---------------------------------------------------------------------------------------------------- tables
def _int_table(data: bytes, sep: str | None, n_cols: int) -> np.ndarray | None:
    """The file as an int64 [n_lines, n_cols] table when every token is a non-negative integer and every non-empty
    line has n_cols tokens; None otherwise (the caller parses it another way)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    tokens, line_start, _, err = parse_int_lines(buf, ord(sep) if sep else -1)
    if err >= 0:
        return None
    lengths = np.diff(np.append(line_start, tokens.shape[0]))
    if lengths.size == 0 or (lengths != n_cols).any():
        return None
    return tokens.reshape(-1, n_cols)


def _split_header(data: bytes, path: Any) -> tuple[str, bytes]:
    nl = data.find(b"\n")
    if nl < 0:
        return data.decode("utf-8").rstrip("\r"), b""
    return data[:nl].decode("utf-8").rstrip("\r"), data[nl + 1:]


def _text_columns(body: bytes, sep: str | None, n_cols: int, path: Any) -> list[np.ndarray]:
    """Columns of a delimited text body as arrays of str (object), by pandas when installed, else in Python."""
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None and sep is not None and len(sep) == 1:
        import io

        df = pd.read_csv(io.BytesIO(body), sep=sep, header=None, dtype=str, keep_default_na=False,
                         quoting=3, engine="c", names=range(n_cols))
        return [df[c].to_numpy(dtype=object) for c in range(n_cols)]
    rows = [line.split(sep) if sep else line.split() for line in body.decode("utf-8").splitlines() if line.strip()]
    for k, r in enumerate(rows):
        if len(r) != n_cols:
            raise ValueError(f"{str(path)!r}: line {k + 2} has {len(r)} fields, expected {n_cols}")
    return [np.array([r[c] for r in rows], dtype=object) for c in range(n_cols)]


def _numeric(col: np.ndarray, name: str, path: Any, kind: str) -> np.ndarray:
    """A column of strings as int64 (kind 'int'), float64 ('float'), or int64 when all are integers ('token')."""
    if col.dtype.kind in "iuf":
        return col.astype(np.float64) if kind == "float" else col
    try:
        if kind == "float":
            return col.astype(np.float64)
        return col.astype(np.int64)
    except ValueError:
        if kind == "token":
            return col
        raise ValueError(f"{str(path)!r}: column {name!r} must be numeric") from None


# ---------------------------------------------------------------------------------------------------- MovieLens
_ML_FORMATS = {"u.data": ("\t", False), "ratings.dat": (":", False), "ratings.csv": (",", True)}
_ML_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


def _movielens_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.is_dir():
        for name in _ML_FORMATS:
            if (p / name).exists():
                return p / name
        raise FileNotFoundError(f"no MovieLens ratings file ({', '.join(_ML_FORMATS)}) in folder {str(p)!r}")
    if p.name not in _ML_FORMATS:
        raise ValueError(f"unknown MovieLens file {p.name!r} (path {str(p)!r}): expected one of "
                         f"{', '.join(_ML_FORMATS)}")
    return p


def read_movielens(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The ratings of a MovieLens ``u.data`` / ``ratings.dat`` / ``ratings.csv`` file (or a folder holding one) in
    file order: {"user_id", "item_id": int64, "rating": float64, "timestamp": int64}."""
    p = _movielens_file(path)
    sep, header = _ML_FORMATS[p.name]
    data = _read_bytes(p)
    if header:
        _, data = _split_header(data, p)
    table = _int_table(data, sep, 4)
    if table is not None:
        cols = [table[:, c] for c in range(4)]
    else:
        text_cols = _text_columns(data, None if sep == ":" else sep, 4, p) if sep != ":" else None
        if text_cols is None:  # ratings.dat with non-integer tokens: split on '::'
            rows = [line.split("::") for line in data.decode("utf-8").splitlines() if line.strip()]
            text_cols = [np.array([r[c] for r in rows], dtype=object) for c in range(4)]
        cols = [_numeric(text_cols[c], _ML_COLUMNS[c], p, "float" if c == 2 else "int") for c in range(4)]
    if cols[0].shape[0] == 0:
        raise ValueError(f"empty input: {str(p)!r} holds no ratings")
    return {"user_id": cols[0].astype(np.int64), "item_id": cols[1].astype(np.int64),
            "rating": cols[2].astype(np.float64), "timestamp": cols[3].astype(np.int64)}


def load_movielens(path: str | os.PathLike[str], **kwargs: Any) -> Interactions:
    """MovieLens ratings as :class:`Interactions` (values: ratings, timestamps kept); kwargs go to
    :meth:`Interactions.from_arrays` (ids, duplicates)."""
    c = read_movielens(path)
    return Interactions.from_arrays(c["user_id"], c["item_id"], c["rating"], c["timestamp"], **kwargs)


# ---------------------------------------------------------------------------------------------------- RecBole
def read_atomic(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A RecBole atomic file (``.inter``, ``.user``, ``.item``; header ``name:type``, tab-separated) in file order.

    ``token`` fields come back as int64 when every value is an integer, else as strings; ``float`` fields as
    float64; ``token_seq`` / ``float_seq`` fields as object arrays of tuples (split on spaces)."""
    p = Path(path)
    data = _read_bytes(p)
    header, body = _split_header(data, p)
    names, types = [], []
    for field in header.split("\t"):
        name, _, ftype = field.partition(":")
        if ftype not in ("token", "float", "token_seq", "float_seq"):
            raise ValueError(f"{str(p)!r}: header field {field!r} is not name:type with type token, float, "
                             "token_seq or float_seq")
        names.append(name)
        types.append(ftype)
    n_cols = len(names)
    table = _int_table(body, "\t", n_cols) if all(t in ("token", "float") for t in types) else None
    out: dict[str, np.ndarray] = {}
    if table is not None:
        for c, (name, ftype) in enumerate(zip(names, types)):
            out[name] = table[:, c].astype(np.float64) if ftype == "float" else table[:, c].copy()
        return out
    cols = _text_columns(body, "\t", n_cols, p)
    for c, (name, ftype) in enumerate(zip(names, types)):
        if ftype == "token_seq":
            out[name] = np.array([tuple(v.split()) for v in cols[c]] + [()], dtype=object)[:-1]
        elif ftype == "float_seq":
            out[name] = np.array([tuple(float(t) for t in v.split()) for v in cols[c]] + [()], dtype=object)[:-1]
        else:
            out[name] = _numeric(cols[c], name, p, ftype)
    return out


def load_recbole_inter(
    path: str | os.PathLike[str],
    *,
    user_field: str = "user_id",
    item_field: str = "item_id",
    value_field: str | None = "auto",
    time_field: str | None = "auto",
    **kwargs: Any,
) -> Interactions:
    """A RecBole ``.inter`` file as :class:`Interactions`. ``value_field`` / ``time_field`` "auto" take ``rating``
    / ``timestamp`` when present (None: no values / no timestamps); kwargs go to :meth:`Interactions.from_arrays`."""
    cols = read_atomic(path)
    for f in (user_field, item_field):
        if f not in cols:
            raise KeyError(f"{str(path)!r} has no field {f!r}; fields: {list(cols)}")
    if value_field == "auto":
        value_field = "rating" if "rating" in cols else None
    if time_field == "auto":
        time_field = "timestamp" if "timestamp" in cols else None
    return Interactions.from_dataframe(cols, user_field, item_field, value_field, time_field, **kwargs)


# ---------------------------------------------------------------------------------------------------- sessions
@dataclass(frozen=True)
class Sessions:
    """Item sequences, jagged: session s is ``items[offsets[s]:offsets[s+1]]`` (file ids, in order, repeats kept);
    ``labels`` holds the next item of each session for ``prefix<TAB>label`` files, else None."""

    offsets: np.ndarray
    items: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return self.offsets.shape[0] - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def session(self, s: int) -> np.ndarray:
        return self.items[self.offsets[s]:self.offsets[s + 1]]

    def prefix_targets(self) -> Sessions:
        """Every proper prefix of every session with its next item as the label (SR-GNN's training examples):
        a session [a, b, c] gives ([a], b) and ([a, b], c)."""
        lens = self.lengths()
        n_ex = np.maximum(lens - 1, 0)
        sess = np.repeat(np.arange(len(self)), n_ex)
        k = np.arange(n_ex.sum()) - np.repeat(np.cumsum(n_ex) - n_ex, n_ex) + 1  # prefix length 1..len-1
        starts = self.offsets[:-1][sess]
        offsets = np.zeros(k.size + 1, np.int64)
        np.cumsum(k, out=offsets[1:])
        within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], k)
        items = self.items[np.repeat(starts, k) + within]
        return Sessions(offsets, items, self.items[starts + k])


def load_sessions(path: str | os.PathLike[str]) -> Sessions:
    """A session file: one session per line (``i1 i2 ...``), or ``i1 i2 ...<TAB>next_item`` per line (then the
    labels are kept). Integer item ids, kept as they are (int64)."""
    p = Path(path)
    data = _read_bytes(p)
    text_has_tab = b"\t" in data
    if text_has_tab:
        lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
        prefixes, labels = [], []
        for k, line in enumerate(lines):
            left, tab, right = line.rpartition("\t")
            if not tab or not right.strip():
                raise ValueError(f"{str(p)!r}: line {k + 1} is not 'prefix<TAB>label'")
            prefixes.append(left)
            labels.append(right.strip())
        data = "\n".join(prefixes).encode()
        label_arr = _numeric(np.array(labels, dtype=object), "label", p, "int")
    tokens, line_start, _, err = parse_int_lines(np.frombuffer(data, dtype=np.uint8), -1)
    if err >= 0:
        raise ValueError(f"{str(p)!r}: session items must be non-negative integers, found byte {data[err:err + 1]!r} "
                         f"at offset {err}")
    if line_start.size == 0:
        raise ValueError(f"empty input: {str(p)!r} holds no sessions")
    offsets = np.append(line_start, tokens.shape[0]).astype(np.int64)
    if text_has_tab and offsets.size - 1 != label_arr.size:
        raise ValueError(f"{str(p)!r}: {label_arr.size} labels but {offsets.size - 1} non-empty prefixes")
    return Sessions(offsets, tokens, label_arr if text_has_tab else None)


# ---------------------------------------------------------------------------------------------------- libSVM
@dataclass(frozen=True)
class CTRData:
    """Rows of sparse features with a label (libFM / libSVM): row r has features ``indices[indptr[r]:indptr[r+1]]``
    with ``values`` alike; ``labels`` float32 as in the file (e.g. -1/1)."""

    labels: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def n_features(self) -> int:
        """max feature index + 1."""
        return int(self.indices.max()) + 1 if self.indices.size else 0

    def fixed_width(self) -> int | None:
        """The number of features per row when every row has the same (one-hot fields), else None."""
        lens = np.diff(self.indptr)
        return int(lens[0]) if lens.size and (lens == lens[0]).all() else None

    def binary_labels(self, threshold: float = 0.0) -> np.ndarray:
        """Labels as float32 0/1 (label > threshold)."""
        return (self.labels > threshold).astype(np.float32)


def load_libsvm(path: str | os.PathLike[str]) -> CTRData:
    """A libFM / libSVM file: ``label idx:val idx:val ...`` per line."""
    p = Path(path)
    text = _read_bytes(p).decode("utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"empty input: {str(p)!r} holds no rows")
    counts = np.fromiter((line.count(":") for line in lines), np.int64, count=len(lines))
    try:
        toks = np.array(" ".join(lines).replace(":", " ").split(), dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{str(p)!r} is not a libSVM file (label idx:val ...): {exc}") from None
    per_line = 1 + 2 * counts
    if toks.size != per_line.sum():
        raise ValueError(f"{str(p)!r} is not a libSVM file: a line holds a token that is not label or idx:val")
    starts = np.concatenate([[0], np.cumsum(per_line)[:-1]])
    labels = toks[starts].astype(np.float32)
    is_label = np.zeros(toks.size, bool)
    is_label[starts] = True
    pairs = toks[~is_label].reshape(-1, 2)
    idx = pairs[:, 0]
    if (idx < 0).any() or (idx != np.floor(idx)).any():
        k = int(np.flatnonzero((idx < 0) | (idx != np.floor(idx)))[0])
        raise ValueError(f"{str(p)!r}: feature indices must be non-negative integers, got {idx[k]!r}")
    indptr = np.zeros(len(lines) + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return CTRData(labels, indptr, idx.astype(np.int64), pairs[:, 1].astype(np.float32))


# ---------------------------------------------------------------------------------------------------- dispatch
def load(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Loads a file by its name: ``u.data`` / ``ratings.dat`` / ``ratings.csv`` (MovieLens), ``*.inter`` (RecBole),
    ``*.libfm`` / ``*.libsvm`` / ``*.svm`` (CTR rows), ``*.txt`` (``user item item ...`` lines). Anything else raises
    a ValueError naming the file; call the specific loader (e.g. :func:`load_sessions`) for other layouts."""
    p = Path(path)
    if p.name in _ML_FORMATS:
        return load_movielens(p, **kwargs)
    suffix = p.suffix.lower()
    if suffix == ".inter":
        return load_recbole_inter(p, **kwargs)
    if suffix in (".libfm", ".libsvm", ".svm"):
        return load_libsvm(p, **kwargs)
    if suffix == ".txt":
        return load_user_item_lines(p, **kwargs)
    raise ValueError(f"unknown file format for path {str(p)!r} (suffix {p.suffix!r}): expected u.data, ratings.dat, "
                     "ratings.csv, .inter, .libfm/.libsvm/.svm or .txt user-item lines")


def dataset_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of dataset ``name`` under ``root`` or the ``FASTREC_DATA`` environment variable."""
    base = root if root is not None else os.environ.get("FASTREC_DATA")
    if base is None:
        raise ValueError("no data folder: pass root= or set the FASTREC_DATA environment variable")
    p = Path(base) / name
    if not p.is_dir():
        raise FileNotFoundError(f"dataset folder {str(p)!r} does not exist")
    return p


def load_dataset(name: str, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The datasets of a ``FASTREC_DATA`` folder (see ../shared/data/README.md) by name, as a dict of parts:

    - ``ml-100k``: {"all": Interactions (ratings, timestamps)};
    - ``gowalla``: {"train", "test"}: Interactions in the file's 0-based id space;
    - ``beauty``, ``lastfm``: {"all"}: Interactions with line positions as timestamps (leave-one-out ready);
      lastfm adds "sample_negatives": int64 [n_users, 99] external item ids of LastFM_sample.txt, row order as in
      the file, with "sample_users" their external user ids;
    - ``diginetica``: {"train": Sessions, "test": Sessions with labels};
    - ``frappe``: {"validation", "test"}: CTRData.
    """
    d = dataset_path(name, root)
    if name == "ml-100k":
        return {"all": load_recbole_inter(d / "ml-100k.inter")}
    if name == "gowalla":
        train = load_user_item_lines(d / "train.txt", user_ids="identity", item_ids="identity")
        test = load_user_item_lines(d / "test.txt", user_ids="identity", item_ids="identity", unknown="error",
                                    n_users=max(train.n_users, _max_first_token(d / "test.txt") + 1),
                                    n_items=train.n_items)
        if test.n_users > train.n_users:
            train = load_user_item_lines(d / "train.txt", user_ids="identity", item_ids="identity",
                                         n_users=test.n_users, n_items=train.n_items)
        return {"train": train, "test": test}
    if name in ("beauty", "lastfm"):
        fname = "Beauty.txt" if name == "beauty" else "LastFM.txt"
        out: dict[str, Any] = {"all": load_user_item_lines(d / fname, positions_as_timestamps=True)}
        if name == "lastfm" and (d / "LastFM_sample.txt").exists():
            line_users, _, items, _ = read_user_item_lines(d / "LastFM_sample.txt")
            out["sample_users"] = line_users
            out["sample_negatives"] = items.reshape(line_users.shape[0], -1)
        return out
    if name == "diginetica":
        return {"train": load_sessions(d / "train_sessions.txt"), "test": load_sessions(d / "test_prefix_label.tsv")}
    if name == "frappe":
        return {"validation": load_libsvm(d / "frappe.validation.libfm"), "test": load_libsvm(d / "frappe.test.libfm")}
    raise ValueError(f"unknown dataset name {name!r}: expected ml-100k, gowalla, beauty, lastfm, diginetica, frappe")


def _max_first_token(path: Path) -> int:
    line_users, _, _, _ = read_user_item_lines(path)
    return int(line_users.max())
