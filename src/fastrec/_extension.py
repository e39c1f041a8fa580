"""Loads the compiled kernels (fastrec._C) and says why when they cannot be used.

Without them every op runs its plain-torch reference (fastrec.ops.reference): slower, same results.
Set FASTREC_DISABLE_EXTENSION=1 to force the reference path.
"""

from __future__ import annotations

import importlib
import os
import platform
import warnings
from types import ModuleType

import torch

__all__ = ["build_info", "extension_error", "has_kernel", "is_available"]


def _load() -> tuple[ModuleType | None, str | None]:
    """Returns (build info, None) when fastrec._C is loaded, else (None, the reason it is not)."""
    if os.environ.get("FASTREC_DISABLE_EXTENSION") == "1":
        return None, "disabled by FASTREC_DISABLE_EXTENSION=1"
    try:
        info = importlib.import_module("fastrec._build_info")
    except ImportError:
        return None, "fastrec._C is not built (install with `pip install --no-build-isolation -e .`)"
    if info.torch_version != torch.__version__:
        return None, (
            f"fastrec._C was built against torch {info.torch_version} but torch {torch.__version__} is installed; "
            "rebuild with `pip install --no-build-isolation --force-reinstall --no-deps .`"
        )
    if not info.native and platform.machine() in ("x86_64", "AMD64") and not torch.cpu._is_avx2_supported():
        return None, "this CPU lacks AVX2, which the default build of fastrec._C requires"
    try:
        importlib.import_module("fastrec._C")
    except (ImportError, OSError) as exc:
        return None, f"fastrec._C failed to load: {exc}"
    return info, None


build_info, extension_error = _load()
if extension_error is not None and not extension_error.startswith("disabled"):
    warnings.warn(f"fastrec: using the plain-torch reference ops: {extension_error}", RuntimeWarning, stacklevel=2)


def is_available() -> bool:
    """True when the compiled kernels are loaded."""
    return build_info is not None


def has_kernel(device: torch.device) -> bool:
    """True when fastrec._C has kernels for tensors on `device` (else the reference implementation runs)."""
    if build_info is None:
        return False
    if device.type == "cpu":
        return True
    return device.type == "cuda" and build_info.cuda
