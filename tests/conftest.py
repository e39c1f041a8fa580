import os

import pytest
import torch

import fastrec

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


def kernels_expected() -> bool:
    """The kernel tests must run the compiled kernels, not the reference against itself, unless disabled on purpose."""
    return os.environ.get("FASTREC_DISABLE_EXTENSION") != "1"


@pytest.fixture(autouse=True, scope="session")
def _extension_loaded():
    if kernels_expected() and not fastrec.extension_available():
        pytest.exit(f"fastrec._C did not load: {fastrec._extension.extension_error}", returncode=3)
