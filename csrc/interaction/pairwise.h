// Field-aware FM (FFM) and DLRM's dot interaction: argument checks and pair indexing shared by the CPU kernels
// (cpu/pairwise_cpu.cpp) and the CUDA kernels (cuda/pairwise_cuda.cu).
//
// FFM: x [B, F, F, K], x[b, i, j] = field i's vector for field j; pair (i, j), i < j, has term
//   t_ij = <x[b, i, j], x[b, j, i]> v_i v_j,  out = sum_{i<j} t_ij ([B]) or the t_ij ([B, F (F - 1) / 2]);
//   d out / d x[b, i, j] = g_ij v_i v_j x[b, j, i] (i != j; the diagonal is never read, its gradient is 0),
//   d out / d v_i = sum_{j != i} g_ij <x[b, i, j], x[b, j, i]> v_j.
// Dot: T = [dense; sparse_1..S] ([S + 1, D] per sample), pairs (i, j), j < i (j <= i with self_interaction),
//   ordered by i then j; out = [dense, <T_i, T_j>...] (dense only with concat_dense);
//   dT_i = sum_{j<i} g_ij T_j + sum_{k>i} g_ki T_k (+ 2 g_ii T_i), plus grad_out[:D] for dense.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

#include "common/macros.h"

namespace fastrec::pairwise {

// Index of FFM pair (i, j), i < j, in row-major order of the strict upper triangle.
FASTREC_HOST_DEVICE int64_t upper_pair(int64_t i, int64_t j, int64_t fields) {
  return i * fields - i * (i + 1) / 2 + (j - i - 1);
}

// Index of dot pair (i, j), j < i (j <= i with self), in row-major order of the lower triangle.
FASTREC_HOST_DEVICE int64_t lower_pair(int64_t i, int64_t j, bool self_interaction) {
  return self_interaction ? i * (i + 1) / 2 + j : i * (i - 1) / 2 + j;
}

FASTREC_HOST_DEVICE int64_t num_dot_pairs(int64_t rows, bool self_interaction) {
  return self_interaction ? rows * (rows + 1) / 2 : rows * (rows - 1) / 2;
}

inline void check_float(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
                   " must be float32 or float64, got ", t.scalar_type());
}

inline void check_like(const char* op, const char* name, const at::Tensor& t, const at::Tensor& like) {
  TORCH_CHECK_TYPE(t.scalar_type() == like.scalar_type(), op, ": ", name, " dtype ", t.scalar_type(),
                   " must match ", like.scalar_type());
  TORCH_CHECK_VALUE(t.device() == like.device(), op, ": ", name, " is on ", t.device(), " but the first input is on ",
                    like.device());
}

inline void check_ffm(const char* op, const at::Tensor& x, const std::optional<at::Tensor>& values) {
  TORCH_CHECK_VALUE(x.dim() == 4 && x.size(1) == x.size(2), op,
                    ": x must be [batch, num_fields, num_fields, embed_dim], got shape ", x.sizes());
  check_float(op, "x", x);
  if (values.has_value()) {
    TORCH_CHECK_VALUE(values->dim() == 2 && values->size(0) == x.size(0) && values->size(1) == x.size(1), op,
                      ": values must have shape [batch, num_fields] = ", x.sizes().slice(0, 2), ", got ",
                      values->sizes());
    check_like(op, "values", *values, x);
  }
}

inline void check_dot(const char* op, const at::Tensor& dense, const at::Tensor& sparse) {
  TORCH_CHECK_VALUE(dense.dim() == 2, op, ": dense must be 2-D [batch, dim], got shape ", dense.sizes());
  TORCH_CHECK_VALUE(sparse.dim() == 3 && sparse.size(0) == dense.size(0) && sparse.size(2) == dense.size(1), op,
                    ": sparse must have shape [batch=", dense.size(0), ", num_sparse, dim=", dense.size(1), "], got ",
                    sparse.sizes());
  check_float(op, "dense", dense);
  check_like(op, "sparse", sparse, dense);
}

inline void check_grad(const char* op, const at::Tensor& grad_out, at::IntArrayRef expected, const at::Tensor& like) {
  TORCH_CHECK_VALUE(grad_out.sizes() == expected, op, ": grad_out must have shape ", expected, ", got ",
                    grad_out.sizes());
  check_like(op, "grad_out", grad_out, like);
}

}  // namespace fastrec::pairwise
