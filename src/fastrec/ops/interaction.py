"""Feature-interaction ops beyond the FM: xDeepFM's CIN layer, field-aware FM, DLRM's dot interaction and the FM
over sparse (libFM/CSR) input. Each checks its arguments here (the reference path raises the same errors as the
kernels) and runs the fused kernel where one exists, the plain-torch reference (:mod:`fastrec.ops.reference`)
elsewhere."""

from __future__ import annotations

import torch
from torch import Tensor

from fastrec import _extension
from fastrec.ops import reference

__all__ = ["CIN_ACTIVATIONS", "cin_layer", "dot_interaction", "dot_interaction_dim", "ffm_interaction", "sparse_fm"]

CIN_ACTIVATIONS = tuple(reference.ACTIVATIONS)
_FLOATS = (torch.float32, torch.float64)


def _check_tensor(op: str, name: str, t: object, dim: int, layout: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != dim:
        raise ValueError(f"{op}: {name} must be {dim}-D {layout}, got shape {tuple(t.shape)}")


def _check_float(op: str, name: str, t: Tensor, like: Tensor | None = None) -> None:
    if t.dtype not in _FLOATS:
        raise TypeError(f"{op}: {name} must be float32 or float64, got {t.dtype}")
    if like is not None:
        if t.dtype != like.dtype:
            raise TypeError(f"{op}: {name} dtype {t.dtype} must match {like.dtype}")
        if t.device != like.device:
            raise ValueError(f"{op}: {name} is on {t.device} but the first input is on {like.device}")


# ---------------------------------------------------------------------------------------------------------- CIN


def _check_cin_layer(
    x_prev: Tensor | None, x0: Tensor, weight: Tensor, bias: Tensor | None, activation: str
) -> None:
    op = "cin_layer"
    _check_tensor(op, "x0", x0, 3, "[batch, embed_dim, num_fields]")
    _check_float(op, "x0", x0)
    if x_prev is not None:
        _check_tensor(op, "x_prev", x_prev, 3, "[batch, embed_dim, hidden_in]")
        _check_float(op, "x_prev", x_prev, x0)
        if x0.shape[:2] != x_prev.shape[:2]:
            raise ValueError(
                f"cin_layer: x_prev must be [batch, embed_dim, hidden_in] with [batch, embed_dim] = "
                f"{list(x0.shape[:2])}, got {list(x_prev.shape)}"
            )
    hidden_in = x0.shape[2] if x_prev is None else x_prev.shape[2]
    _check_tensor(op, "weight", weight, 3, "[hidden_out, hidden_in, num_fields]")
    _check_float(op, "weight", weight, x0)
    if weight.shape[1:] != (hidden_in, x0.shape[2]):
        raise ValueError(
            f"cin_layer: weight must have shape [hidden_out, hidden_in={hidden_in}, num_fields={x0.shape[2]}], "
            f"got {list(weight.shape)}"
        )
    if bias is not None:
        _check_tensor(op, "bias", bias, 1, "[hidden_out]")
        _check_float(op, "bias", bias, x0)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"cin_layer: bias must have shape [hidden_out={weight.shape[0]}], got {list(bias.shape)}")
    if activation not in reference.ACTIVATIONS:
        raise ValueError(f"cin_layer: activation must be one of {CIN_ACTIVATIONS}, got {activation!r}")


def cin_layer(
    x_prev: Tensor | None, x0: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str = "relu"
) -> Tensor:
    """One layer of xDeepFM's Compressed Interaction Network, without materializing the outer products.

    ``out[b, d, h] = act(sum_{i, j} weight[h, i, j] * x_prev[b, d, i] * x0[b, d, j] + bias[h])``

    Tensors are embedding-dim-major (the layout that makes each (b, d) a row of a matrix product):

    Args:
        x_prev: ``[B, K, H_in]`` the previous layer's feature maps, or None for the first layer (``x_prev = x0``,
            whose symmetry the kernel uses to halve the work).
        x0: ``[B, K, F]`` the field embeddings, transposed from the usual ``[B, F, K]``.
        weight: ``[H_out, H_in, F]``; ``weight[h, i, j]`` weighs ``x_prev[:, :, i] * x0[:, :, j]``.
        bias: optional ``[H_out]``.
        activation: ``"relu"``, ``"identity"`` (or ``"linear"``), ``"sigmoid"`` or ``"tanh"``.

    Returns ``[B, K, H_out]``. Differentiable in every tensor argument. The kernel works through tiles of (b, d)
    rows whose pair products stay in cache: neither pass stores the ``[B, K, H_in * F]`` tensor the reference
    (:func:`fastrec.ops.reference.cin_layer`) builds; backward saves only the inputs and the output.
    """
    _check_cin_layer(x_prev, x0, weight, bias, activation)
    if _extension.has_kernel(x0.device):
        return torch.ops.fastrec.cin_layer.default(x_prev, x0, weight, bias, activation)
    return reference.cin_layer(x_prev, x0, weight, bias, activation)


if _extension.is_available():

    @torch.library.register_fake("fastrec::cin_layer")
    def _cin_layer_fake(x_prev, x0, weight, bias, activation):
        _check_cin_layer(x_prev, x0, weight, bias, activation)
        return x0.new_empty(x0.shape[0], x0.shape[1], weight.shape[0])

    @torch.library.register_fake("fastrec::cin_layer_backward")
    def _cin_layer_backward_fake(grad_out, out, x_prev, x0, weight, has_bias, activation):
        return (
            x0.new_empty(x_prev.shape if x_prev is not None else (0,)),
            x0.new_empty(x0.shape),
            weight.new_empty(weight.shape),
            weight.new_empty((weight.shape[0],) if has_bias else (0,)),
        )

    def _cin_setup_context(ctx, inputs, output) -> None:
        x_prev, x0, weight, bias, activation = inputs
        ctx.save_for_backward(x_prev, x0, weight, output)
        ctx.has_bias, ctx.activation = bias is not None, activation

    def _cin_backward(ctx, grad_out: Tensor):
        x_prev, x0, weight, out = ctx.saved_tensors
        grad_x_prev, grad_x0, grad_weight, grad_bias = torch.ops.fastrec.cin_layer_backward.default(
            grad_out, out, x_prev, x0, weight, ctx.has_bias, ctx.activation
        )
        return (grad_x_prev if x_prev is not None else None), grad_x0, grad_weight, (
            grad_bias if ctx.has_bias else None), None

    torch.library.register_autograd("fastrec::cin_layer", _cin_backward, setup_context=_cin_setup_context)


# ---------------------------------------------------------------------------------------------------------- FFM


def _check_ffm(x: Tensor, values: Tensor | None) -> None:
    op = "ffm_interaction"
    _check_tensor(op, "x", x, 4, "[batch, num_fields, num_fields, embed_dim]")
    _check_float(op, "x", x)
    if x.shape[1] != x.shape[2]:
        raise ValueError(
            f"ffm_interaction: x must be [batch, num_fields, num_fields, embed_dim] (one vector per field pair), "
            f"got mismatched field counts {x.shape[1]} and {x.shape[2]}"
        )
    if values is not None:
        _check_tensor(op, "values", values, 2, "[batch, num_fields]")
        _check_float(op, "values", values, x)
        if values.shape != x.shape[:2]:
            raise ValueError(
                f"ffm_interaction: values must have shape [batch, num_fields] = {list(x.shape[:2])}, "
                f"got {list(values.shape)}"
            )


def ffm_interaction(x: Tensor, values: Tensor | None = None, reduce: bool = True) -> Tensor:
    """Field-aware factorization machine's pairwise term (Juan et al., RecSys 2016).

    ``x[b, i, j]`` is field i's latent vector for field j (``[B, F, F, K]``; an embedding collection with one table
    of dim ``F * K`` per field gives ``[B, F, F * K]``, a free view). With field values ``v`` (default 1):

    - ``reduce=True``: ``[B]``, ``sum_{i<j} <x[b, i, j], x[b, j, i]> * v_i * v_j``;
    - ``reduce=False``: ``[B, F * (F - 1) / 2]``, each pair's term, pairs (i, j), i < j, in row-major order (for
      field-weighted FMs).

    The diagonal ``x[:, i, i]`` is never read. Differentiable in ``x`` and ``values``.
    """
    _check_ffm(x, values)
    if _extension.has_kernel(x.device):
        return torch.ops.fastrec.ffm_interaction.default(x, values, bool(reduce))
    return reference.ffm_interaction(x, values, bool(reduce))


if _extension.is_available():

    @torch.library.register_fake("fastrec::ffm_interaction")
    def _ffm_fake(x, values, reduce):
        _check_ffm(x, values)
        fields = x.shape[1]
        return x.new_empty((x.shape[0],) if reduce else (x.shape[0], fields * (fields - 1) // 2))

    @torch.library.register_fake("fastrec::ffm_interaction_backward")
    def _ffm_backward_fake(grad_out, x, values, reduce):
        return x.new_empty(x.shape), x.new_empty(values.shape if values is not None else (0,))

    def _ffm_setup_context(ctx, inputs, output) -> None:
        x, values, reduce = inputs
        ctx.save_for_backward(x, values)
        ctx.reduce = reduce

    def _ffm_backward(ctx, grad_out):
        x, values = ctx.saved_tensors
        grad_x, grad_values = torch.ops.fastrec.ffm_interaction_backward.default(grad_out, x, values, ctx.reduce)
        return grad_x, (grad_values if values is not None else None), None

    torch.library.register_autograd("fastrec::ffm_interaction", _ffm_backward, setup_context=_ffm_setup_context)


# ---------------------------------------------------------------------------------------------------------- DLRM


def _check_dot(dense: Tensor, sparse: Tensor) -> None:
    op = "dot_interaction"
    _check_tensor(op, "dense", dense, 2, "[batch, dim]")
    _check_tensor(op, "sparse", sparse, 3, "[batch, num_sparse, dim]")
    _check_float(op, "dense", dense)
    _check_float(op, "sparse", sparse, dense)
    if sparse.shape[0] != dense.shape[0] or sparse.shape[2] != dense.shape[1]:
        raise ValueError(
            f"dot_interaction: sparse must have shape [batch={dense.shape[0]}, num_sparse, dim={dense.shape[1]}], "
            f"got {list(sparse.shape)}"
        )


def dot_interaction_dim(num_sparse: int, dim: int, self_interaction: bool = False, concat_dense: bool = True) -> int:
    """The output width of :func:`dot_interaction`: ``dim`` (with concat_dense) plus the triangle's size."""
    n = num_sparse + 1
    return (dim if concat_dense else 0) + (n * (n + 1) // 2 if self_interaction else n * (n - 1) // 2)


def dot_interaction(dense: Tensor, sparse: Tensor, self_interaction: bool = False, concat_dense: bool = True) -> Tensor:
    """DLRM's dot interaction (Naumov et al., 2019).

    With ``T = [dense; sparse[:, 0]; ...; sparse[:, S - 1]]`` (``S + 1`` vectors of dim D per sample), returns the
    lower triangle of ``T T^T`` (strict unless ``self_interaction``), pairs (i, j), j < i, ordered by i then j (as
    DLRM's reference), preceded by ``dense`` when ``concat_dense``: ``[B, D + (S + 1) S / 2]`` by default.

    Args:
        dense: ``[B, D]``, the bottom MLP's output.
        sparse: ``[B, S, D]``, the embeddings.
    """
    _check_dot(dense, sparse)
    if _extension.has_kernel(dense.device):
        return torch.ops.fastrec.dot_interaction.default(dense, sparse, bool(self_interaction), bool(concat_dense))
    return reference.dot_interaction(dense, sparse, bool(self_interaction), bool(concat_dense))


if _extension.is_available():

    @torch.library.register_fake("fastrec::dot_interaction")
    def _dot_fake(dense, sparse, self_interaction, concat_dense):
        _check_dot(dense, sparse)
        width = dot_interaction_dim(sparse.shape[1], dense.shape[1], self_interaction, concat_dense)
        return dense.new_empty(dense.shape[0], width)

    @torch.library.register_fake("fastrec::dot_interaction_backward")
    def _dot_backward_fake(grad_out, dense, sparse, self_interaction, concat_dense):
        return dense.new_empty(dense.shape), sparse.new_empty(sparse.shape)

    def _dot_setup_context(ctx, inputs, output) -> None:
        dense, sparse, self_interaction, concat_dense = inputs
        ctx.save_for_backward(dense, sparse)
        ctx.flags = (self_interaction, concat_dense)

    def _dot_backward(ctx, grad_out):
        dense, sparse = ctx.saved_tensors
        grad_dense, grad_sparse = torch.ops.fastrec.dot_interaction_backward.default(grad_out, dense, sparse, *ctx.flags)
        return grad_dense, grad_sparse, None, None

    torch.library.register_autograd("fastrec::dot_interaction", _dot_backward, setup_context=_dot_setup_context)


# ---------------------------------------------------------------------------------------------------------- libFM


def _check_sparse_fm(
    values: Tensor, col_indices: Tensor, row_offsets: Tensor, w0: Tensor, w: Tensor, v: Tensor, data: bool = True
) -> None:
    """Shapes and dtypes; with ``data``, also the CSR structure and the feature ids (the kernels check those
    themselves, so only the reference path needs them here)."""
    op = "sparse_fm"
    _check_tensor(op, "values", values, 1, "[nnz]")
    _check_tensor(op, "col_indices", col_indices, 1, "[nnz]")
    _check_tensor(op, "row_offsets", row_offsets, 1, "[batch + 1]")
    _check_tensor(op, "V", v, 2, "[num_features, k]")
    _check_tensor(op, "w", w, 1, "[num_features]")
    if not isinstance(w0, Tensor) or w0.numel() != 1:
        raise ValueError(f"sparse_fm: w0 must be a one-element tensor, got {w0!r}")
    _check_float(op, "values", values)
    for name, t in (("w0", w0), ("w", w), ("V", v)):
        _check_float(op, name, t, values)
    for name, t in (("col_indices", col_indices), ("row_offsets", row_offsets)):
        if t.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"sparse_fm: {name} must be int32 or int64, got {t.dtype}")
        if t.device != values.device:
            raise ValueError(f"sparse_fm: {name} is on {t.device} but values is on {values.device}")
    if col_indices.shape != values.shape:
        raise ValueError(
            f"sparse_fm: col_indices must have the shape of values [nnz={values.shape[0]}], got {list(col_indices.shape)}"
        )
    if w.shape[0] != v.shape[0]:
        raise ValueError(f"sparse_fm: w [num_features] and V [num_features, k] disagree: {w.shape[0]} vs {v.shape[0]}")
    if row_offsets.numel() == 0:
        raise ValueError("sparse_fm: row_offsets must hold batch + 1 >= 1 entries, got an empty tensor")
    if not data or values.device.type == "meta":
        return
    first, last = int(row_offsets[0]), int(row_offsets[-1])
    if first != 0 or last != values.shape[0]:
        raise ValueError(f"sparse_fm: row_offsets must start at 0 and end at nnz={values.shape[0]}, got {first}..{last}")
    if row_offsets.numel() > 1 and bool((row_offsets[1:] < row_offsets[:-1]).any()):
        raise ValueError("sparse_fm: row_offsets must be non-decreasing")
    if col_indices.numel() > 0:
        lo, hi = int(col_indices.min()), int(col_indices.max())
        if lo < 0 or hi >= v.shape[0]:
            bad = lo if lo < 0 else hi
            raise IndexError(f"sparse_fm: col_indices holds {bad}, out of range for {v.shape[0]} features")


def sparse_fm(values: Tensor, col_indices: Tensor, row_offsets: Tensor, w0: Tensor, w: Tensor, V: Tensor) -> Tensor:
    """Factorization machine over sparse input, libFM's form, in O(k * nnz).

    Row r of the CSR batch holds nonzeros ``x_i = values[p]`` at features ``i = col_indices[p]`` for
    ``p in [row_offsets[r], row_offsets[r + 1])``; any number per row (libSVM/libFM data):

    ``y_r = w0 + sum_i w_i x_i + 0.5 * sum_k((sum_i V_ik x_i)^2 - sum_i V_ik^2 x_i^2)``

    Args:
        values: ``[nnz]`` float32 or float64.
        col_indices: ``[nnz]`` int32/int64 feature ids in ``[0, num_features)``.
        row_offsets: ``[B + 1]`` int32/int64, non-decreasing, from 0 to nnz.
        w0: one-element bias; w: ``[num_features]``; V: ``[num_features, k]``.

    Returns ``[B]``. With the compiled kernels, the gradients of ``w`` and ``V`` are sparse COO tensors holding only
    the touched rows (as ``nn.Embedding(sparse=True)``: use ``torch.optim.SGD``, ``SparseAdam`` or ``Adagrad``; the
    reference fallback gives the same values as dense tensors); ``values`` gets none.
    """
    kernel = _extension.has_kernel(values.device)
    _check_sparse_fm(values, col_indices, row_offsets, w0, w, V, data=not kernel)
    if kernel:
        return torch.ops.fastrec.sparse_fm.default(values, col_indices, row_offsets, w0, w, V)
    return reference.sparse_fm(values, col_indices, row_offsets, w0.reshape(()), w, V)


if _extension.is_available():

    @torch.library.register_fake("fastrec::sparse_fm")
    def _sparse_fm_fake(values, col_indices, row_offsets, w0, w, V):
        _check_sparse_fm(values, col_indices, row_offsets, w0, w, V, data=False)
        return values.new_empty(row_offsets.shape[0] - 1)

    @torch.library.register_fake("fastrec::sparse_fm_backward")
    def _sparse_fm_backward_fake(grad_out, values, col_indices, row_offsets, w, V):
        touched = torch.library.get_ctx().new_dynamic_size()
        return (values.new_empty(1), col_indices.new_empty(touched, dtype=torch.int64), values.new_empty(touched),
                values.new_empty(touched, V.shape[1]))

    def _sparse_fm_setup_context(ctx, inputs, output) -> None:
        values, col_indices, row_offsets, w0, w, V = inputs
        ctx.save_for_backward(values, col_indices, row_offsets, w, V)
        ctx.w0_shape = w0.shape

    def _sparse_fm_backward(ctx, grad_out):
        values, col_indices, row_offsets, w, V = ctx.saved_tensors
        grad_w0, rows, grad_w, grad_v = torch.ops.fastrec.sparse_fm_backward.default(
            grad_out, values, col_indices, row_offsets, w, V
        )
        index = rows.unsqueeze(0)
        sparse_w = torch.sparse_coo_tensor(index, grad_w, w.shape, is_coalesced=True, check_invariants=False)
        sparse_v = torch.sparse_coo_tensor(index, grad_v, V.shape, is_coalesced=True, check_invariants=False)
        return None, None, None, grad_w0.reshape(ctx.w0_shape), sparse_w, sparse_v

    torch.library.register_autograd("fastrec::sparse_fm", _sparse_fm_backward, setup_context=_sparse_fm_setup_context)
