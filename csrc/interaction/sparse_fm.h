// The FM over sparse (CSR) input, libFM's form: argument checks and per-row math shared by the CPU kernel
// (cpu/sparse_fm_cpu.cpp) and the CUDA kernel (cuda/sparse_fm_cuda.cu).
//
// Row r holds x_p = values[p] at feature c_p = col_indices[p] for p in [row_offsets[r], row_offsets[r + 1]):
//   s_k = sum_p V[c_p, k] x_p,  q_k = sum_p V[c_p, k]^2 x_p^2,
//   y_r = w0 + sum_p w[c_p] x_p + 0.5 * sum_k (s_k^2 - q_k),
//   dy/dw0 = 1,  dy/dw[c_p] += x_p,  dy/dV[c_p, k] += x_p s_k - V[c_p, k] x_p^2.
// The gradients of w and V are row-sparse: the backward returns the touched feature ids and their summed rows.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "common/macros.h"

namespace fastrec::sparse_fm {

template <typename acc_t>
FASTREC_HOST_DEVICE acc_t v_partial(acc_t g, acc_t x, acc_t s_k, acc_t v_k) {
  return g * (x * s_k - v_k * x * x);
}

inline void check_inputs(const char* op, const at::Tensor& values, const at::Tensor& cols, const at::Tensor& offsets,
                         const at::Tensor& w, const at::Tensor& v) {
  TORCH_CHECK_VALUE(values.dim() == 1, op, ": values must be 1-D [nnz], got shape ", values.sizes());
  TORCH_CHECK_TYPE(values.scalar_type() == at::kFloat || values.scalar_type() == at::kDouble, op,
                   ": values must be float32 or float64, got ", values.scalar_type());
  TORCH_CHECK_VALUE(cols.dim() == 1 && cols.size(0) == values.size(0), op,
                    ": col_indices must have the shape of values [nnz=", values.size(0), "], got ", cols.sizes());
  TORCH_CHECK_VALUE(offsets.dim() == 1 && offsets.size(0) >= 1, op,
                    ": row_offsets must be 1-D [batch + 1] with at least one entry, got ", offsets.sizes());
  for (const auto* t : {&cols, &offsets}) {
    TORCH_CHECK_TYPE(t->scalar_type() == at::kInt || t->scalar_type() == at::kLong, op, ": ",
                     t == &cols ? "col_indices" : "row_offsets", " must be int32 or int64, got ", t->scalar_type());
    TORCH_CHECK_VALUE(t->device() == values.device(), op, ": ", t == &cols ? "col_indices" : "row_offsets",
                      " is on ", t->device(), " but values is on ", values.device());
  }
  TORCH_CHECK_VALUE(w.dim() == 1 && v.dim() == 2 && w.size(0) == v.size(0), op,
                    ": w must be [num_features] and V [num_features, k], got ", w.sizes(), " and ", v.sizes());
  for (const auto* t : {&w, &v}) {
    TORCH_CHECK_TYPE(t->scalar_type() == values.scalar_type(), op, ": ", t == &w ? "w" : "V", " dtype ",
                     t->scalar_type(), " must match ", values.scalar_type());
    TORCH_CHECK_VALUE(t->device() == values.device(), op, ": ", t == &w ? "w" : "V", " is on ", t->device(),
                      " but values is on ", values.device());
  }
}

}  // namespace fastrec::sparse_fm
