// Sparse approximate EASE (the approach of SANSA, Spisak et al., RecSys 2023): an incomplete LDL^T factorization of
// the (reordered, pruned) Gram matrix under a density budget, then a sparse approximate inverse of the unit lower
// factor, so that P = (G + l2 I)^-1 ~ W^T W with W = D^-1/2 L^-1 sparse.
//
// incomplete_ldl: left-looking (column by column) with a sparse accumulator. Each finished column j of L keeps a
// cursor to its first entry at or below the current row, and sits in the linked list of that row; column k is
// then A[k:, k] - sum over the columns j listed at row k of l_kj d_j L[k:, j]. Dropping keeps, per column, the
// max_col_nnz entries of largest |l_ik| whose relative size |w_ik| / sqrt(max(d_k, a_kk) a_ii) is at least drop_tol,
// and moves each dropped entry onto the two diagonals (Ajiz-Jennings), so the factor stays positive definite. The
// work is bounded by n * max_col_nnz^2, independent of how dense the exact factor would be.
//
// unit_lower_inverse: column j of L^-1 by sparse forward substitution from e_j (rows visited in increasing order
// through a heap), dropping entries whose scaled size |x_r| / sqrt(d_r) falls below drop_tol / sqrt(d_j), then the
// max_col_nnz largest; columns are independent and run in parallel. The result is scaled to W = D^-1/2 L^-1 and
// each row of W keeps its diagonal and its largest entries, max_row_nnz in all, which bounds the cost of products
// with W.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <omp.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>
#include <tuple>
#include <vector>

#include "common/parallel.h"

namespace fastrec::sparse {
namespace {

void check_lower_csc(const char* op, const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& values,
                     bool strict) {
  TORCH_CHECK_TYPE(indptr.scalar_type() == at::kLong && indices.scalar_type() == at::kInt &&
                       values.scalar_type() == at::kDouble,
                   op, ": expected indptr int64, indices int32 and values float64, got ", indptr.scalar_type(), ", ",
                   indices.scalar_type(), ", ", values.scalar_type());
  TORCH_CHECK_VALUE(indptr.dim() == 1 && indptr.numel() >= 1 && indices.dim() == 1 && values.sizes() == indices.sizes() &&
                        indptr.is_contiguous() && indices.is_contiguous() && values.is_contiguous(),
                    op, ": indptr [n + 1], indices [nnz] and values [nnz] must be contiguous 1-D tensors");
  const int64_t n = indptr.numel() - 1;
  const int64_t* ptr = indptr.const_data_ptr<int64_t>();
  const int32_t* idx = indices.const_data_ptr<int32_t>();
  TORCH_CHECK_VALUE(ptr[0] == 0 && ptr[n] == indices.numel(), op, ": indptr must start at 0 and end at nnz");
  for (int64_t j = 0; j < n; ++j) {
    TORCH_CHECK_VALUE(ptr[j] <= ptr[j + 1], op, ": indptr must be non-decreasing at column ", j);
    int64_t prev = strict ? j : j - 1;
    for (int64_t p = ptr[j]; p < ptr[j + 1]; ++p) {
      TORCH_CHECK_VALUE(idx[p] > prev && idx[p] < n, op, ": column ", j, " must hold increasing row ids in (",
                        strict ? "" : "=", j, ", ", n, "), got ", idx[p]);
      prev = idx[p];
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> incomplete_ldl_cpu(const at::Tensor& indptr,
                                                                              const at::Tensor& indices,
                                                                              const at::Tensor& values,
                                                                              int64_t max_col_nnz, double drop_tol) {
  check_lower_csc("incomplete_ldl", indptr, indices, values, /*strict=*/false);
  TORCH_CHECK_VALUE(max_col_nnz >= 0, "incomplete_ldl: max_col_nnz must be >= 0, got ", max_col_nnz);
  TORCH_CHECK_VALUE(std::isfinite(drop_tol) && drop_tol >= 0, "incomplete_ldl: drop_tol must be >= 0, got ", drop_tol);
  const int64_t n = indptr.numel() - 1;
  const int64_t* a_ptr = indptr.const_data_ptr<int64_t>();
  const int32_t* a_idx = indices.const_data_ptr<int32_t>();
  const double* a_val = values.const_data_ptr<double>();
  std::vector<double> a_diag(n, 0.0);
  for (int64_t j = 0; j < n; ++j) {
    if (a_ptr[j] < a_ptr[j + 1] && a_idx[a_ptr[j]] == j) a_diag[j] = a_val[a_ptr[j]];
    TORCH_CHECK_VALUE(a_diag[j] > 0 && std::isfinite(a_diag[j]), "incomplete_ldl: the diagonal must be positive, a[",
                      j, ", ", j, "] = ", a_diag[j]);
  }
  std::vector<int64_t> l_ptr(n + 1, 0);
  std::vector<int32_t> l_idx;
  std::vector<double> l_val;
  l_idx.reserve(size_t(n) * std::min<int64_t>(max_col_nnz, 64));
  l_val.reserve(l_idx.capacity());
  std::vector<double> d(n);
  std::vector<int64_t> cursor(n, 0);
  std::vector<int32_t> head(n, -1), next(n, -1);
  std::vector<double> w(n, 0.0), compensation(n, 0.0);
  std::vector<int64_t> stamp(n, -1);
  std::vector<int32_t> touched, keep;
  auto link = [&](int32_t col) {  // puts column col in the list of the row its cursor points at
    const int32_t row = l_idx[cursor[col]];
    next[col] = head[row];
    head[row] = col;
  };
  for (int64_t k = 0; k < n; ++k) {
    touched.clear();
    for (int64_t p = a_ptr[k]; p < a_ptr[k + 1]; ++p) {
      const int32_t i = a_idx[p];
      stamp[i] = k;
      w[i] = a_val[p];
      touched.push_back(i);
    }
    if (stamp[k] != k) {
      stamp[k] = k;
      w[k] = 0.0;
      touched.push_back(int32_t(k));
    }
    for (int32_t j = head[k]; j != -1;) {
      const int32_t j_next = next[j];
      const int64_t c = cursor[j];
      const double f = l_val[c] * d[j];
      for (int64_t p = c; p < l_ptr[j + 1]; ++p) {
        const int32_t i = l_idx[p];
        if (stamp[i] != k) {
          stamp[i] = k;
          w[i] = 0.0;
          touched.push_back(i);
        }
        w[i] -= f * l_val[p];
      }
      if (++cursor[j] < l_ptr[j + 1]) link(j);
      j = j_next;
    }
    // Drop first, then compensate (Ajiz and Jennings): a dropped w_ik adds |w_ik| g to a_ii (later) and |w_ik| / g
    // to this pivot, g = sqrt(a_ii / a_kk), which keeps the incomplete factor positive definite.
    keep.clear();
    for (const int32_t i : touched) {
      if (i > k && w[i] != 0.0) keep.push_back(i);
    }
    if (int64_t(keep.size()) > max_col_nnz) {
      std::nth_element(keep.begin(), keep.begin() + max_col_nnz, keep.end(), [&](int32_t a, int32_t b) {
        return std::abs(w[a]) > std::abs(w[b]) || (std::abs(w[a]) == std::abs(w[b]) && a < b);
      });
    }
    double dk = w[k] + compensation[k];
    const double dk_estimate = std::max(dk, a_diag[k]);
    int64_t kept = 0;
    for (size_t t = 0; t < keep.size(); ++t) {
      const int32_t i = keep[t];
      const bool drop = int64_t(t) >= max_col_nnz || std::abs(w[i]) < drop_tol * std::sqrt(dk_estimate * a_diag[i]);
      if (drop) {
        const double g = std::sqrt(a_diag[i] / a_diag[k]);
        compensation[i] += std::abs(w[i]) * g;
        dk += std::abs(w[i]) / g;
      } else {
        keep[kept++] = i;
      }
    }
    keep.resize(kept);
    if (!(dk > 1e-8 * a_diag[k])) dk = a_diag[k];
    d[k] = dk;
    std::sort(keep.begin(), keep.end());
    for (const int32_t i : keep) {
      l_idx.push_back(i);
      l_val.push_back(w[i] / dk);
    }
    l_ptr[k + 1] = int64_t(l_idx.size());
    head[k] = -1;
    if (l_ptr[k + 1] > l_ptr[k]) {
      cursor[k] = l_ptr[k];
      link(int32_t(k));
    }
  }
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor out_ptr = at::empty({n + 1}, long_opts);
  at::Tensor out_idx = at::empty({int64_t(l_idx.size())}, long_opts.dtype(at::kInt));
  at::Tensor out_val = at::empty({int64_t(l_val.size())}, long_opts.dtype(at::kDouble));
  at::Tensor out_d = at::empty({n}, long_opts.dtype(at::kDouble));
  std::copy(l_ptr.begin(), l_ptr.end(), out_ptr.mutable_data_ptr<int64_t>());
  std::copy(l_idx.begin(), l_idx.end(), out_idx.mutable_data_ptr<int32_t>());
  std::copy(l_val.begin(), l_val.end(), out_val.mutable_data_ptr<double>());
  std::copy(d.begin(), d.end(), out_d.mutable_data_ptr<double>());
  return {out_ptr, out_idx, out_val, out_d};
}

// Keeps the m entries of largest |value| among ids (ties: lower id); the survivors are sorted by id.
void keep_largest(std::vector<int32_t>& ids, const std::function<double(int32_t)>& size, int64_t m) {
  if (int64_t(ids.size()) > m) {
    std::nth_element(ids.begin(), ids.begin() + m, ids.end(), [&](int32_t a, int32_t b) {
      const double sa = size(a), sb = size(b);
      return sa > sb || (sa == sb && a < b);
    });
    ids.resize(m);
  }
  std::sort(ids.begin(), ids.end());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> unit_lower_inverse_cpu(const at::Tensor& indptr,
                                                                      const at::Tensor& indices,
                                                                      const at::Tensor& values, const at::Tensor& d,
                                                                      int64_t max_col_nnz, int64_t max_row_nnz,
                                                                      double drop_tol) {
  check_lower_csc("unit_lower_inverse", indptr, indices, values, /*strict=*/true);
  const int64_t n = indptr.numel() - 1;
  TORCH_CHECK_VALUE(d.scalar_type() == at::kDouble && d.dim() == 1 && d.numel() == n && d.is_contiguous(),
                    "unit_lower_inverse: d must be a contiguous float64 tensor of shape [", n, "]");
  TORCH_CHECK_VALUE(max_col_nnz >= 1 && max_row_nnz >= 1, "unit_lower_inverse: max_col_nnz and max_row_nnz must be "
                    ">= 1, got ", max_col_nnz, " and ", max_row_nnz);
  TORCH_CHECK_VALUE(std::isfinite(drop_tol) && drop_tol >= 0, "unit_lower_inverse: drop_tol must be >= 0, got ",
                    drop_tol);
  const int64_t* l_ptr = indptr.const_data_ptr<int64_t>();
  const int32_t* l_idx = indices.const_data_ptr<int32_t>();
  const double* l_val = values.const_data_ptr<double>();
  const double* dd = d.const_data_ptr<double>();
  std::vector<double> inv_sqrt_d(n);
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK_VALUE(dd[i] > 0 && std::isfinite(dd[i]), "unit_lower_inverse: d must be positive, d[", i, "] = ", dd[i]);
    inv_sqrt_d[i] = 1.0 / std::sqrt(dd[i]);
  }
  // Columns of W (rows r >= j), computed in parallel into per-column vectors.
  std::vector<std::vector<int32_t>> col_rows(n);
  std::vector<std::vector<double>> col_vals(n);
  const int threads = at::get_num_threads();
  std::vector<std::vector<double>> xs(threads);
  std::vector<std::vector<int64_t>> stamps(threads);
  parallel_for_chunks(n, 64, [&](int64_t begin, int64_t end) {
    const int tid = omp_get_thread_num();
    std::vector<double>& x = xs[tid];
    std::vector<int64_t>& stamp = stamps[tid];
    if (x.empty()) {
      x.assign(n, 0.0);
      stamp.assign(n, -1);
    }
    std::priority_queue<int32_t, std::vector<int32_t>, std::greater<int32_t>> rows;
    std::vector<int32_t> kept;
    for (int64_t j = begin; j < end; ++j) {
      const double cut = drop_tol * inv_sqrt_d[j];
      kept.clear();
      stamp[j] = j;
      x[j] = 1.0;
      rows.push(int32_t(j));
      while (!rows.empty()) {
        const int32_t r = rows.top();
        rows.pop();
        const double xr = x[r];
        if (xr == 0.0 || std::abs(xr) * inv_sqrt_d[r] < cut) continue;  // dropped: not propagated
        kept.push_back(r);
        for (int64_t p = l_ptr[r]; p < l_ptr[r + 1]; ++p) {
          const int32_t i = l_idx[p];
          if (stamp[i] != j) {
            stamp[i] = j;
            x[i] = 0.0;
            rows.push(i);
          }
          x[i] -= l_val[p] * xr;
        }
      }
      keep_largest(kept, [&](int32_t r) { return std::abs(x[r]) * inv_sqrt_d[r]; }, max_col_nnz);
      col_rows[j].assign(kept.begin(), kept.end());
      col_vals[j].resize(kept.size());
      for (size_t t = 0; t < kept.size(); ++t) col_vals[j][t] = x[kept[t]] * inv_sqrt_d[kept[t]];
    }
  });
  // Transpose to rows of W, then keep the max_row_nnz largest entries of each row.
  std::vector<int64_t> row_ptr(n + 1, 0);
  for (int64_t j = 0; j < n; ++j)
    for (const int32_t r : col_rows[j]) ++row_ptr[r + 1];
  for (int64_t r = 0; r < n; ++r) row_ptr[r + 1] += row_ptr[r];
  std::vector<int32_t> row_cols(row_ptr[n]);
  std::vector<double> row_vals(row_ptr[n]);
  {
    std::vector<int64_t> fill(row_ptr.begin(), row_ptr.end() - 1);
    for (int64_t j = 0; j < n; ++j) {
      for (size_t t = 0; t < col_rows[j].size(); ++t) {
        const int64_t q = fill[col_rows[j][t]]++;
        row_cols[q] = int32_t(j);
        row_vals[q] = col_vals[j][t];
      }
      std::vector<int32_t>().swap(col_rows[j]);
      std::vector<double>().swap(col_vals[j]);
    }
  }
  std::vector<int64_t> out_count(n);
  parallel_for_chunks(n, 256, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> pos;
    std::vector<int32_t> cols_tmp;
    std::vector<double> vals_tmp;
    for (int64_t r = begin; r < end; ++r) {
      const int64_t lo = row_ptr[r], len = row_ptr[r + 1] - lo;
      if (len <= max_row_nnz) {
        out_count[r] = len;
        continue;
      }
      pos.resize(len);
      for (int64_t t = 0; t < len; ++t) pos[t] = int32_t(t);
      keep_largest(  // the diagonal always stays: diag(W^T W) > 0
          pos, [&](int32_t t) { return row_cols[lo + t] == r ? HUGE_VAL : std::abs(row_vals[lo + t]); },
          max_row_nnz);
      cols_tmp.resize(pos.size());
      vals_tmp.resize(pos.size());
      for (size_t t = 0; t < pos.size(); ++t) {
        cols_tmp[t] = row_cols[lo + pos[t]];
        vals_tmp[t] = row_vals[lo + pos[t]];
      }
      std::copy(cols_tmp.begin(), cols_tmp.end(), row_cols.begin() + lo);
      std::copy(vals_tmp.begin(), vals_tmp.end(), row_vals.begin() + lo);
      out_count[r] = int64_t(pos.size());
    }
  });
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor out_ptr = at::empty({n + 1}, long_opts);
  int64_t* op = out_ptr.mutable_data_ptr<int64_t>();
  op[0] = 0;
  for (int64_t r = 0; r < n; ++r) op[r + 1] = op[r] + out_count[r];
  at::Tensor out_idx = at::empty({op[n]}, long_opts.dtype(at::kInt));
  at::Tensor out_val = at::empty({op[n]}, long_opts.dtype(at::kDouble));
  int32_t* oi = out_idx.mutable_data_ptr<int32_t>();
  double* ov = out_val.mutable_data_ptr<double>();
  for (int64_t r = 0; r < n; ++r) {
    std::copy(row_cols.begin() + row_ptr[r], row_cols.begin() + row_ptr[r] + out_count[r], oi + op[r]);
    std::copy(row_vals.begin() + row_ptr[r], row_vals.begin() + row_ptr[r] + out_count[r], ov + op[r]);
  }
  return {out_ptr, out_idx, out_val};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CPU, m) {
  m.impl("incomplete_ldl", &incomplete_ldl_cpu);
  m.impl("unit_lower_inverse", &unit_lower_inverse_cpu);
}

}  // namespace fastrec::sparse
