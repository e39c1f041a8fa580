"""Dataset loaders for the canonical file formats.

- ``user item item ...`` lines (LightGCN/NGCF ``train.txt``/``test.txt``, S3-Rec/SASRec ``Beauty.txt``):
  :func:`load_user_item_lines`.

Loaders read integer files with a numba tokenizer (one pass over the bytes) and fall back to a general parser when
ids are not plain non-negative integers.
"""

from __future__ import annotations

import os
from pathlib import Path
import numpy as np

from fastrec.data._ids import IdSpec, factorize
from fastrec.data._parse import parse_int_lines
from fastrec.data.interactions import Interactions

__all__ = ["load_user_item_lines", "read_user_item_lines"]


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
