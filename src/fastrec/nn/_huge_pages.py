"""Embedding buffers backed by transparent huge pages (Linux).

A lookup reads rows at random over hundreds of megabytes: with 4 KiB pages nearly every row costs a TLB miss and a
page walk on top of the cache miss. Advising the kernel (``madvise(MADV_HUGEPAGE)``) before the buffer is first
written backs it with 2 MiB pages; on the 26-table Criteo workload (2 threads, quiet machine) the pooled forward
measured 1.16-1.21x faster (D=16 and 64, pooling 1 and 20). Best effort: where the advice is not available (other systems,
``transparent_hugepage`` set to ``never``) the buffer is an ordinary one. ``FASTREC_HUGE_PAGES=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["empty_table", "huge_pages_status"]

_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14  # linux/mman.h
_MIN_BYTES = 4 * _HUGE_PAGE  # smaller buffers stay cache- and TLB-friendly anyway


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    return madvise


def system_setting() -> str:
    """The kernel's transparent-huge-page mode: "always", "madvise" or "never" ("never" where it cannot be read)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "never"


def _turned_off() -> bool:
    return os.environ.get("FASTREC_HUGE_PAGES", "1") == "0"


def huge_pages_status() -> str:
    """One line for `fastrec info`: whether large embedding tables get huge pages here."""
    if _turned_off():
        return "off (FASTREC_HUGE_PAGES=0)"
    mode = system_setting()
    if _madvise() is None or mode == "never":
        return f"not available (transparent_hugepage: {mode})"
    return f"on for tables of >= {_MIN_BYTES >> 20} MiB (transparent_hugepage: {mode})"


def empty_table(shape: Sequence[int], dtype: torch.dtype, device: torch.device | str | None = None) -> Tensor:
    """``torch.empty(shape)``; a CPU buffer of at least 8 MiB gets the huge-page advice on the 2 MiB-aligned part of
    its memory before anything touches it, so the caller's initialization faults it in as huge pages."""
    out = torch.empty(tuple(shape), dtype=dtype, device=device)
    nbytes = out.numel() * out.element_size()
    madvise = _madvise()
    if out.device.type != "cpu" or nbytes < _MIN_BYTES or madvise is None or _turned_off():
        return out
    first = -(-out.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
    last = (out.data_ptr() + nbytes) // _HUGE_PAGE * _HUGE_PAGE
    if last > first:
        madvise(first, last - first, _MADV_HUGEPAGE)  # a refusal (EINVAL: no THP) leaves 4 KiB pages
    return out
