"""Atomic file writes: a reader of ``path`` sees the old file or the complete new one, never a half-written file,
and a write that fails (an exception, a full disk, Ctrl-C) leaves the old file as it was."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: Literal["w", "wb"] = "wb") -> Iterator[IO[Any]]:
    """Yields a temporary file in ``path``'s folder (created if missing) to write into. On a clean exit the file is
    flushed to disk and renamed over ``path`` (``os.replace``); on an exception it is removed and ``path`` is left
    untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` to ``path`` through :func:`atomic_open`."""
    with atomic_open(path, "w") as f:
        f.write(text)
