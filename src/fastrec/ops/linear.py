"""Kernels of the closed-form linear models (fastrec.linear): Gram matrices of CSR interactions, EASE's dense solve
in place, and fused serving top-k. Not differentiable (closed forms, no training loop).

X is passed as a CSR triple: ``indptr`` int64 ``[rows + 1]``, ``indices`` int32 ``[nnz]`` strictly increasing within
each row, ``values`` float32/float64 ``[nnz]`` or None (all ones). Every function runs the C++ kernel when the
extension is loaded and its plain-torch reference (:mod:`fastrec.ops.reference`) otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fastrec import _extension
from fastrec.ops import reference

__all__ = [
    "csr_topk_dense", "csr_topk_sparse", "ease_dense_", "gram_dense", "gram_sparse", "incomplete_ldl",
    "unit_lower_inverse",
]

_FLOATS = (torch.float32, torch.float64)


def _check_csr(op: str, name: str, indptr: Tensor, indices: Tensor, values: Tensor | None, n_cols: int) -> None:
    # The C++ kernels check the same (and ids and ordering, element by element); these run first so that the
    # reference path raises the same clear errors for the common mistakes.
    if indptr.dtype != torch.int64 or indices.dtype != torch.int32:
        raise TypeError(f"{op}: {name} indptr must be int64 and indices int32, got {indptr.dtype} and {indices.dtype}")
    if indptr.dim() != 1 or indptr.numel() < 1 or indices.dim() != 1:
        raise ValueError(f"{op}: {name} indptr and indices must be 1-D (indptr non-empty), "
                         f"got shapes {tuple(indptr.shape)} and {tuple(indices.shape)}")
    if values is not None and (values.dtype not in _FLOATS or values.shape != indices.shape):
        raise ValueError(f"{op}: {name} values must be float32/float64 of shape {tuple(indices.shape)}, "
                         f"got {values.dtype} {tuple(values.shape)}")
    if not 0 <= n_cols < 2**31:
        raise ValueError(f"{op}: n_items must be in [0, 2**31), got {n_cols}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n_cols):
        raise ValueError(f"{op}: {name} indices must lie in [0, {n_cols}), got "
                         f"{int(indices.min())}..{int(indices.max())}")


def _check_dtype(op: str, dtype: torch.dtype) -> None:
    if dtype not in _FLOATS:
        raise TypeError(f"{op}: dtype must be torch.float32 or torch.float64, got {dtype}")


def gram_dense(indptr: Tensor, indices: Tensor, values: Tensor | None, n_items: int,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """G = X^T X as a dense symmetric ``[n_items, n_items]`` tensor of ``dtype``.

    The kernel transposes X once, gives each thread whole rows of G, computes the upper triangle only (rows are
    sorted: x_ui x_uj for j >= i) and mirrors it. Accumulates in ``dtype`` (float32 counts are exact below 2^24).
    """
    _check_csr("gram_dense", "X", indptr, indices, values, n_items)
    _check_dtype("gram_dense", dtype)
    if _extension.has_kernel(indptr.device):
        return torch.ops.fastrec.gram_dense.default(indptr, indices, values, n_items, dtype)
    return reference.gram_dense(indptr, indices, values, n_items, dtype)


def gram_sparse(indptr: Tensor, indices: Tensor, values: Tensor | None, n_items: int, *, threshold: float = 0.0,
                top_m: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor]:
    """G = X^T X as CSR ``(indptr, indices int32, values)``, pruned row by row: row i keeps g_ii and the
    off-diagonal g_ij != 0 with |g_ij| >= ``threshold``, only the ``top_m`` largest |g_ij| when ``top_m > 0``
    (ties: lower j first). Pruned rows make the result unsymmetric; no dense row or intermediate product is built
    beyond one n_items accumulator per thread."""
    _check_csr("gram_sparse", "X", indptr, indices, values, n_items)
    _check_dtype("gram_sparse", dtype)
    if not threshold >= 0 or threshold == float("inf"):
        raise ValueError(f"gram_sparse: threshold must be finite and >= 0, got {threshold}")
    if top_m < 0:
        raise ValueError(f"gram_sparse: top_m must be >= 0 (0: no limit), got {top_m}")
    if _extension.has_kernel(indptr.device):
        return torch.ops.fastrec.gram_sparse.default(indptr, indices, values, n_items, float(threshold), int(top_m),
                                                     dtype)
    return reference.gram_sparse(indptr, indices, values, n_items, float(threshold), int(top_m), dtype)


def ease_dense_(gram: Tensor, l2: float) -> Tensor:
    """Turns the Gram matrix G (dense, symmetric, float32/float64) into EASE's weights B in place and returns it:
    P = (G + l2 I)^-1 by Cholesky (LAPACK potrf + potri from the MKL in libtorch, on torch's thread count), then one
    tiled pass b_ij = -p_ij / p_jj, b_ii = 0. No second n x n buffer. A G + l2 I that is not positive definite raises
    (``gram`` is then garbage)."""
    if gram.dim() != 2 or gram.shape[0] != gram.shape[1]:
        raise ValueError(f"ease_dense_: gram must be square, got shape {tuple(gram.shape)}")
    _check_dtype("ease_dense_", gram.dtype)
    if not (l2 > 0 and l2 != float("inf")):
        raise ValueError(f"ease_dense_: l2 must be finite and > 0, got {l2}")
    if _extension.has_kernel(gram.device) and gram.is_contiguous():
        torch.ops.fastrec.ease_dense_.default(gram, float(l2))
    else:
        reference.ease_dense_(gram, float(l2))
    return gram


def _check_topk(op: str, k: int, n: int) -> None:
    if not 0 <= k <= n:
        raise ValueError(f"{op}: k must be in [0, n_items={n}], got {k}")


def csr_topk_dense(weights: Tensor, indptr: Tensor, indices: Tensor, values: Tensor | None, k: int,
                   exclude_seen: bool = True) -> tuple[Tensor, Tensor]:
    """For every row x_u of X: the k items with the highest x_u W (W dense ``[n, n]``), by (score desc, id asc),
    the row's own items skipped when ``exclude_seen``. Returns ``(scores [U, k] in W's dtype, ids int64 [U, k])``,
    padded with (-inf, -1) where fewer than k items remain. Accumulate, skip and select are fused per user: no
    ``[U, n]`` score matrix is built."""
    if weights.dim() != 2 or weights.shape[0] != weights.shape[1]:
        raise ValueError(f"csr_topk_dense: weights must be square [n_items, n_items], got {tuple(weights.shape)}")
    _check_dtype("csr_topk_dense", weights.dtype)
    n = weights.shape[0]
    _check_csr("csr_topk_dense", "X", indptr, indices, values, n)
    _check_topk("csr_topk_dense", k, n)
    if _extension.has_kernel(weights.device):
        return torch.ops.fastrec.csr_topk_dense.default(weights.contiguous(), indptr, indices, values, k,
                                                        exclude_seen)
    return reference.csr_topk_dense(weights, indptr, indices, values, k, exclude_seen)


def csr_topk_sparse(w_indptr: Tensor, w_indices: Tensor, w_values: Tensor, indptr: Tensor, indices: Tensor,
                    values: Tensor | None, k: int, exclude_seen: bool = True) -> tuple[Tensor, Tensor]:
    """:func:`csr_topk_dense` with W sparse (CSR ``[n, n]``, row i = the weights from item i). Items no weight
    reaches score 0 and take part in the ranking, so the result equals the dense computation's."""
    n = w_indptr.numel() - 1
    _check_csr("csr_topk_sparse", "weights", w_indptr, w_indices, w_values, n)
    if w_values is None:
        raise ValueError("csr_topk_sparse: w_values is required")
    _check_csr("csr_topk_sparse", "X", indptr, indices, values, n)
    _check_topk("csr_topk_sparse", k, n)
    if _extension.has_kernel(w_values.device):
        return torch.ops.fastrec.csr_topk_sparse.default(w_indptr, w_indices, w_values, indptr, indices, values, k,
                                                         exclude_seen)
    return reference.csr_topk_sparse(w_indptr, w_indices, w_values, indptr, indices, values, k, exclude_seen)


def _check_lower(op: str, indptr: Tensor, indices: Tensor, values: Tensor) -> None:
    if indptr.dtype != torch.int64 or indices.dtype != torch.int32 or values.dtype != torch.float64:
        raise TypeError(f"{op}: expected indptr int64, indices int32 and values float64, got {indptr.dtype}, "
                        f"{indices.dtype} and {values.dtype}")


def incomplete_ldl(indptr: Tensor, indices: Tensor, values: Tensor, max_col_nnz: int,
                   drop_tol: float = 0.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Incomplete LDL^T of a symmetric positive definite matrix A given by its lower triangle in CSC (float64,
    increasing rows per column, diagonal included). Returns ``(indptr, indices, values, d)``: the strictly lower
    part of the unit lower factor L in CSC, and D. Column k keeps at most ``max_col_nnz`` entries (the largest
    |w_ik|), each with |w_ik| >= drop_tol * sqrt(max(w_kk, a_kk) a_ii); every dropped w_ik is added to the diagonals
    (|w_ik| g to a_ii, |w_ik| / g to the pivot, g = sqrt(a_ii / a_kk): Ajiz and Jennings' compensation, which keeps
    the factor positive definite). Without dropping (``max_col_nnz >= n``, ``drop_tol=0``) it is the exact LDL^T."""
    _check_lower("incomplete_ldl", indptr, indices, values)
    if max_col_nnz < 0 or not drop_tol >= 0:
        raise ValueError(f"incomplete_ldl: need max_col_nnz >= 0 and drop_tol >= 0, got {max_col_nnz}, {drop_tol}")
    if _extension.has_kernel(indptr.device):
        return torch.ops.fastrec.incomplete_ldl.default(indptr, indices, values, int(max_col_nnz), float(drop_tol))
    return reference.incomplete_ldl(indptr, indices, values, int(max_col_nnz), float(drop_tol))


def unit_lower_inverse(indptr: Tensor, indices: Tensor, values: Tensor, d: Tensor, max_col_nnz: int,
                       max_row_nnz: int, drop_tol: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """W = D^-1/2 L^-1, sparse and approximate, for the unit lower L given by its strictly lower part in CSC.
    Column j is L^-1 e_j by forward substitution, skipping (not propagating) entries with |x_r| / sqrt(d_r) <
    drop_tol / sqrt(d_j), then its ``max_col_nnz`` largest |w_rj|; finally every row keeps its ``max_row_nnz``
    largest |w_rj|. Returns W as CSR ``(indptr, indices, values)``, rows r, columns j <= r. Then
    (L D L^T)^-1 = W^T W, exactly when nothing is dropped."""
    _check_lower("unit_lower_inverse", indptr, indices, values)
    if max_col_nnz < 1 or max_row_nnz < 1 or not drop_tol >= 0:
        raise ValueError(f"unit_lower_inverse: need max_col_nnz, max_row_nnz >= 1 and drop_tol >= 0, got "
                         f"{max_col_nnz}, {max_row_nnz}, {drop_tol}")
    if _extension.has_kernel(indptr.device):
        return torch.ops.fastrec.unit_lower_inverse.default(indptr, indices, values, d, int(max_col_nnz),
                                                            int(max_row_nnz), float(drop_tol))
    return reference.unit_lower_inverse(indptr, indices, values, d, int(max_col_nnz), int(max_row_nnz),
                                        float(drop_tol))


if _extension.is_available():

    @torch.library.register_fake("fastrec::gram_dense")
    def _gram_dense_fake(indptr, indices, values, n_items, dtype):
        return indptr.new_empty((n_items, n_items), dtype=dtype)

    @torch.library.register_fake("fastrec::gram_sparse")
    def _gram_sparse_fake(indptr, indices, values, n_items, threshold, top_m, dtype):
        nnz = torch.library.get_ctx().new_dynamic_size()
        return (indptr.new_empty(n_items + 1), indices.new_empty(nnz), indptr.new_empty(nnz, dtype=dtype))

    @torch.library.register_fake("fastrec::ease_dense_")
    def _ease_dense_fake(gram, l2):
        return None

    @torch.library.register_fake("fastrec::csr_topk_dense")
    def _csr_topk_dense_fake(weights, indptr, indices, values, k, exclude_seen):
        rows = indptr.shape[0] - 1
        return weights.new_empty((rows, k)), weights.new_empty((rows, k), dtype=torch.int64)

    @torch.library.register_fake("fastrec::csr_topk_sparse")
    def _csr_topk_sparse_fake(w_indptr, w_indices, w_values, indptr, indices, values, k, exclude_seen):
        rows = indptr.shape[0] - 1
        return w_values.new_empty((rows, k)), w_values.new_empty((rows, k), dtype=torch.int64)

    @torch.library.register_fake("fastrec::incomplete_ldl")
    def _incomplete_ldl_fake(indptr, indices, values, max_col_nnz, drop_tol):
        nnz = torch.library.get_ctx().new_dynamic_size()
        n = indptr.shape[0] - 1
        return indptr.new_empty(n + 1), indices.new_empty(nnz), values.new_empty(nnz), values.new_empty(n)

    @torch.library.register_fake("fastrec::unit_lower_inverse")
    def _unit_lower_inverse_fake(indptr, indices, values, d, max_col_nnz, max_row_nnz, drop_tol):
        nnz = torch.library.get_ctx().new_dynamic_size()
        return indptr.new_empty(indptr.shape[0]), indices.new_empty(nnz), values.new_empty(nnz)
