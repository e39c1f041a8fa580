"""The Python face of fastrec's kernels: functional ops over torch.ops.fastrec.* with autograd and fake-tensor
registration, and their plain-torch references in :mod:`fastrec.ops.reference`."""

from fastrec.ops import reference
from fastrec.ops.embedding import (
    FusedUpdate,
    embedding_bag,
    embedding_bag_fused,
    sparse_weight_grad,
    with_dense_gradient,
)
from fastrec.ops.fm import fm_interaction
from fastrec.ops.interaction import cin_layer, dot_interaction, dot_interaction_dim, ffm_interaction, sparse_fm
from fastrec.ops.linear import (
    csr_topk_dense,
    csr_topk_sparse,
    ease_dense_,
    gram_dense,
    gram_sparse,
    incomplete_ldl,
    unit_lower_inverse,
)

__all__ = [
    "FusedUpdate",
    "cin_layer",
    "csr_topk_dense",
    "csr_topk_sparse",
    "dot_interaction",
    "dot_interaction_dim",
    "ease_dense_",
    "embedding_bag",
    "embedding_bag_fused",
    "ffm_interaction",
    "fm_interaction",
    "gram_dense",
    "gram_sparse",
    "incomplete_ldl",
    "reference",
    "sparse_fm",
    "sparse_weight_grad",
    "unit_lower_inverse",
    "with_dense_gradient",
]
