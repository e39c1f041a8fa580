// CSR inputs of the sparse kernels (csrc/sparse/cpu/*.cpp): argument checks and a read-only view.
//
// A user x item matrix X is given as indptr (int64 [rows + 1]), indices (int32 [nnz], strictly increasing within each
// row, in [0, n_cols)) and optional values (float32 or float64 [nnz]; None: all ones). The checks run before any
// kernel reads the arrays, so a bad id raises instead of reading out of bounds.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

namespace fastrec::sparse {

struct Csr {
  const int64_t* indptr;
  const int32_t* indices;
  const at::Tensor values;  // empty: all ones (kept as a tensor so either float type can be read)
  int64_t rows, cols;

  int64_t begin(int64_t r) const { return indptr[r]; }
  int64_t end(int64_t r) const { return indptr[r + 1]; }
  template <typename T>
  const T* value_ptr() const { return values.defined() ? values.const_data_ptr<T>() : nullptr; }
};

// Checks (indptr, indices, values) as a CSR matrix with n_cols columns; `op` and `name` prefix the messages.
// Rows must hold strictly increasing column ids (sorted, no duplicates): the Gram kernel relies on it.
inline Csr check_csr(const char* op, const char* name, const at::Tensor& indptr, const at::Tensor& indices,
                     const std::optional<at::Tensor>& values, int64_t n_cols) {
  TORCH_CHECK_VALUE(n_cols >= 0 && n_cols < (int64_t(1) << 31), op, ": n_items must be in [0, 2**31), got ", n_cols);
  TORCH_CHECK_TYPE(indptr.scalar_type() == at::kLong, op, ": ", name, " indptr must be int64, got ",
                   indptr.scalar_type());
  TORCH_CHECK_TYPE(indices.scalar_type() == at::kInt, op, ": ", name, " indices must be int32, got ",
                   indices.scalar_type());
  TORCH_CHECK_VALUE(indptr.dim() == 1 && indptr.numel() >= 1, op, ": ", name,
                    " indptr must be 1-D with at least one entry, got shape ", indptr.sizes());
  TORCH_CHECK_VALUE(indices.dim() == 1, op, ": ", name, " indices must be 1-D, got shape ", indices.sizes());
  TORCH_CHECK_VALUE(indptr.is_contiguous() && indices.is_contiguous(), op, ": ", name,
                    " indptr and indices must be contiguous");
  TORCH_CHECK_VALUE(indptr.device().is_cpu() && indices.device().is_cpu(), op, ": ", name,
                    " must be on the CPU, got ", indptr.device());
  const int64_t nnz = indices.numel();
  at::Tensor v;
  if (values.has_value()) {
    v = *values;
    TORCH_CHECK_TYPE(v.scalar_type() == at::kFloat || v.scalar_type() == at::kDouble, op, ": ", name,
                     " values must be float32 or float64, got ", v.scalar_type());
    TORCH_CHECK_VALUE(v.dim() == 1 && v.numel() == nnz && v.is_contiguous() && v.device().is_cpu(), op, ": ", name,
                      " values must be a contiguous CPU tensor of shape [", nnz, "], got ", v.sizes());
  }
  const int64_t* ptr = indptr.const_data_ptr<int64_t>();
  const int32_t* idx = indices.const_data_ptr<int32_t>();
  const int64_t rows = indptr.numel() - 1;
  TORCH_CHECK_VALUE(ptr[0] == 0 && ptr[rows] == nnz, op, ": ", name, " indptr must start at 0 and end at nnz=", nnz,
                    ", got ", ptr[0], " and ", ptr[rows]);
  for (int64_t r = 0; r < rows; ++r) {
    TORCH_CHECK_VALUE(ptr[r] <= ptr[r + 1], op, ": ", name, " indptr must be non-decreasing, indptr[", r,
                      "]=", ptr[r], " > indptr[", r + 1, "]=", ptr[r + 1]);
    int64_t prev = -1;
    for (int64_t p = ptr[r]; p < ptr[r + 1]; ++p) {
      const int64_t c = idx[p];
      TORCH_CHECK_VALUE(c > prev && c < n_cols, op, ": ", name, " row ", r, " must hold strictly increasing ids in [0, ",
                        n_cols, "), got ", c, " after ", prev);
      prev = c;
    }
  }
  return Csr{ptr, idx, v, rows, n_cols};
}

}  // namespace fastrec::sparse
