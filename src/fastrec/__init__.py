"""fastrec: fast recommender-system kernels and models for PyTorch."""

from importlib.metadata import PackageNotFoundError, version

from fastrec import data, nn, ops
from fastrec._extension import is_available as extension_available

try:
    __version__ = version("fastrec")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "data", "extension_available", "nn", "ops"]
