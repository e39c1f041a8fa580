"""The Python face of fastrec's kernels: functional ops over torch.ops.fastrec.* with autograd and fake-tensor
registration, and their plain-torch references in :mod:`fastrec.ops.reference`."""

from fastrec.ops import reference
from fastrec.ops.fm import fm_interaction

__all__ = ["fm_interaction", "reference"]
