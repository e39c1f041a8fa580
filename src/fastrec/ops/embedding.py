"""Table-batched embedding bag: fastrec::embedding_bag_* ops, their autograd, and the fused-optimizer path.

Layout (see csrc/embedding/embedding_bag.h): all tables in one contiguous ``weights`` buffer ([rows, D] when every
table has the same dim, else 1-D); ``table_layout``, five ints per table: (element offset, dim, rows, first global
row id, pooling 0=sum/1=mean); ``feature_tables``, one table index per feature;
``indices``/``offsets`` feature-major like TorchRec's KeyedJaggedTensor (offsets has F * B + 1 entries).
Most users want :class:`fastrec.nn.EmbeddingBagCollection` or :class:`fastrec.nn.EmbeddingBag` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from fastrec import _extension
from fastrec.ops import reference

__all__ = ["FusedUpdate", "embedding_bag", "embedding_bag_fused", "sparse_weight_grad", "with_dense_gradient"]

SGD, ADAGRAD, ROWWISE_ADAGRAD, ADAM, DENSE_ADAM = 0, 1, 2, 3, 4


class FusedUpdate(NamedTuple):
    """An optimizer step applied inside the backward (see fastrec.optim for the user-facing classes)."""

    optimizer: int  # SGD, ADAGRAD, ROWWISE_ADAGRAD, ADAM (touched rows) or DENSE_ADAM (every row)
    lr: float
    eps: float
    beta1: float
    beta2: float
    weight_decay: float


def embedding_bag(
    weights: Tensor,
    table_layout: Sequence[int],
    feature_tables: Sequence[int],
    indices: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None = None,
) -> Tensor:
    """Pooled lookups of F features over B bags each: float32 ``[B, sum_f D_f]``.

    Differentiable with respect to ``weights``: the gradient is a coalesced row-sparse COO tensor (only the touched
    rows, duplicates aggregated), as with ``nn.Embedding(sparse=True)``; and with respect to ``per_sample_weights``
    (dense, one value per index). Ids out of range raise IndexError,
    malformed offsets ValueError, before any row is read.
    """
    if _extension.has_kernel(weights.device):
        return torch.ops.fastrec.embedding_bag_forward.default(
            weights, table_layout, feature_tables, indices, offsets, per_sample_weights
        )
    return reference.embedding_bag(weights, table_layout, feature_tables, indices, offsets, per_sample_weights)


def sparse_weight_grad(
    shape: torch.Size, dtype: torch.dtype, table_layout: Sequence[int], rows: Tensor, values: Tensor
) -> Tensor:
    """The row-sparse gradient of weights of ``shape`` and ``dtype`` as a coalesced COO tensor, from the touched
    global row ids and their aggregated gradients (flat, row after row) as the sparse backward op returns them."""
    if len(shape) == 2:
        values = values.view(-1, shape[1]).to(dtype)
        return torch.sparse_coo_tensor(rows.unsqueeze(0), values, shape, is_coalesced=True, check_invariants=False)
    # One flat buffer of tables with different dims: element-level COO.
    layout = torch.tensor(table_layout, dtype=torch.int64, device=rows.device).view(-1, 5)
    row_starts, order = layout[:, 3].sort()
    table = order[torch.searchsorted(row_starts, rows, right=True) - 1]
    dims = layout[table, 1]
    first_element = layout[table, 0] + (rows - layout[table, 3]) * dims
    within_row = torch.arange(values.numel(), device=rows.device) - torch.repeat_interleave(dims.cumsum(0) - dims, dims)
    elements = torch.repeat_interleave(first_element, dims) + within_row
    coalesced = bool((elements[1:] > elements[:-1]).all())
    return torch.sparse_coo_tensor(
        elements.unsqueeze(0), values.to(dtype), shape, is_coalesced=coalesced, check_invariants=False
    )


class _FusedEmbeddingBag(torch.autograd.Function):
    """Forward: the pooled lookup. Backward: the optimizer step on the touched rows, in place; no gradient flows
    to the weights (they do not require grad). ``trigger`` is a tensor that requires grad so that autograd calls
    the backward at all."""

    @staticmethod
    def forward(ctx, trigger, weights, state1, state2, step, table_layout, feature_tables, indices, offsets,
                per_sample_weights, update):  # step: int
        ctx.save_for_backward(indices, offsets, per_sample_weights)
        ctx.weighted_grad = per_sample_weights is not None and per_sample_weights.requires_grad
        ctx.tensors = (weights, state1, state2, step, table_layout, feature_tables)
        ctx.update = update
        return torch.ops.fastrec.embedding_bag_forward.default(
            weights, table_layout, feature_tables, indices, offsets, per_sample_weights
        )

    @staticmethod
    def backward(ctx, grad_output):
        indices, offsets, per_sample_weights = ctx.saved_tensors
        weights, state1, state2, step, table_layout, feature_tables = ctx.tensors
        update: FusedUpdate = ctx.update
        grad_weights = None
        if ctx.weighted_grad:  # from the rows as the forward read them: before the update below changes them
            grad_weights = torch.ops.fastrec.embedding_bag_backward_per_sample_weights.default(
                grad_output, weights, table_layout, feature_tables, indices, offsets
            )
        torch.ops.fastrec.embedding_bag_backward_fused.default(
            grad_output, weights, state1, state2, table_layout, feature_tables, indices, offsets,
            per_sample_weights, update.optimizer, update.lr, update.eps, update.beta1, update.beta2,
            update.weight_decay, step,
        )
        return (None,) * 9 + (grad_weights, None)


def embedding_bag_fused(
    weights: Tensor,
    state1: Tensor,
    state2: Tensor,
    step: int,
    table_layout: Sequence[int],
    feature_tables: Sequence[int],
    indices: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None,
    update: FusedUpdate,
    trigger: Tensor,
) -> Tensor:
    """Like :func:`embedding_bag`, but the backward applies ``update`` to the touched rows of ``weights`` and to the
    optimizer state (``state1``/``state2``: float32, empty where unused) in place, aggregating duplicate ids first.
    ``step`` is the optimizer step this update belongs to (1 for the first; Adam's bias correction uses it).
    ``trigger`` must require grad."""
    if not _extension.has_kernel(weights.device):
        raise NotImplementedError(
            f"fused embedding optimizers need fastrec's kernels for {weights.device} tensors "
            f"({_extension.extension_error or 'no kernel for this device'}); use optimizer=None and a torch optimizer"
        )
    return _FusedEmbeddingBag.apply(trigger, weights, state1, state2, step, table_layout, feature_tables, indices,
                                    offsets, per_sample_weights, update)


if _extension.is_available():

    @torch.library.register_fake("fastrec::embedding_bag_forward")
    def _forward_fake(weights, table_layout, feature_tables, indices, offsets, per_sample_weights):
        batch = (offsets.shape[0] - 1) // max(len(feature_tables), 1)
        width = sum(table_layout[5 * t + 1] for t in feature_tables)
        return weights.new_empty((batch, width), dtype=torch.float32)

    @torch.library.register_fake("fastrec::embedding_bag_backward_sparse")
    def _backward_sparse_fake(grad_output, table_layout, feature_tables, indices, offsets, per_sample_weights):
        ctx = torch.library.get_ctx()
        num_rows = ctx.new_dynamic_size()  # the touched rows: known only from the data
        dims = {table_layout[5 * t + 1] for t in feature_tables}
        num_values = num_rows * dims.pop() if len(dims) == 1 else ctx.new_dynamic_size()
        return indices.new_empty((num_rows,), dtype=torch.int64), grad_output.new_empty((num_values,))

    @torch.library.register_fake("fastrec::embedding_bag_backward_per_sample_weights")
    def _backward_per_sample_weights_fake(grad_output, weights, table_layout, feature_tables, indices, offsets):
        return grad_output.new_empty(indices.shape)

    @torch.library.register_fake("fastrec::embedding_bag_backward_fused")
    def _backward_fused_fake(grad_output, weights, state1, state2, table_layout, feature_tables, indices, offsets,
                             per_sample_weights, optimizer, lr, eps, beta1, beta2, weight_decay, step):
        return None

    def _setup_context(ctx, inputs, output) -> None:
        weights, table_layout, feature_tables, indices, offsets, per_sample_weights = inputs
        # The weights' gradient needs their shape and dtype, not their values: the weights are saved only for the
        # gradient of per_sample_weights (then, as in torch, updating them before the backward raises).
        weighted_grad = per_sample_weights is not None and per_sample_weights.requires_grad
        ctx.save_for_backward(indices, offsets, per_sample_weights, weights if weighted_grad else None)
        ctx.table_layout, ctx.feature_tables = table_layout, feature_tables
        ctx.weights_shape, ctx.weights_dtype = weights.shape, weights.dtype

    def _backward(ctx, grad_output):
        indices, offsets, per_sample_weights, weights = ctx.saved_tensors
        grad = grad_weights = None
        if ctx.needs_input_grad[0]:
            rows, values = torch.ops.fastrec.embedding_bag_backward_sparse.default(
                grad_output, ctx.table_layout, ctx.feature_tables, indices, offsets, per_sample_weights
            )
            grad = sparse_weight_grad(ctx.weights_shape, ctx.weights_dtype, ctx.table_layout, rows, values)
        if ctx.needs_input_grad[5]:
            grad_weights = torch.ops.fastrec.embedding_bag_backward_per_sample_weights.default(
                grad_output, weights, ctx.table_layout, ctx.feature_tables, indices, offsets
            )
        return grad, None, None, None, None, grad_weights

    torch.library.register_autograd("fastrec::embedding_bag_forward", _backward, setup_context=_setup_context)


class _DenseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weights):
        return weights.view_as(weights)

    @staticmethod
    def backward(ctx, grad):
        return grad.to_dense() if grad.is_sparse else grad


def with_dense_gradient(weights: Tensor) -> Tensor:
    """``weights`` (a view) whose gradient arrives dense even where the op produces a row-sparse one, for optimizers
    that do not take sparse gradients (nn.EmbeddingBag's default, sparse=False)."""
    return _DenseGradient.apply(weights)
