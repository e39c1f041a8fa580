"""fastrec: fast recommender-system kernels and models for PyTorch."""

from importlib.metadata import PackageNotFoundError, version

from fastrec import data, evaluate, features, linear, metrics, nn, ops, optim, retrieval, train
from fastrec._extension import is_available as extension_available
from fastrec.jagged import KeyedJagged

try:
    __version__ = version("fastrec")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "KeyedJagged", "__version__", "data", "evaluate", "extension_available", "features", "linear", "metrics", "nn",
    "ops", "optim", "retrieval", "train",
]
