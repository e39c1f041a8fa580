// CPU kernels of the FM over CSR input (interaction/sparse_fm.h). Forward: one pass over each row's nonzeros,
// parallel over rows, O(k nnz). Backward: the rows' sums s again, then the nonzeros grouped by feature (a stable
// radix sort of (feature, position) keys, so each feature's gradient is summed in position order: deterministic),
// and one gradient row per touched feature, parallel over features.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "interaction/sparse_fm.h"

namespace fastrec::sparse_fm {
namespace {

// Checks the CSR structure against the parameters before any value is read: offsets start at 0, end at nnz and
// never decrease; feature ids lie in [0, num_features).
void check_structure(const char* op, const int64_t* offsets, int64_t batch, const int64_t* cols, int64_t nnz,
                     int64_t num_features) {
  TORCH_CHECK_VALUE(offsets[0] == 0 && offsets[batch] == nnz, op, ": row_offsets must start at 0 and end at nnz=",
                    nnz, ", got ", offsets[0], "..", offsets[batch]);
  for (int64_t r = 0; r < batch; ++r) {
    TORCH_CHECK_VALUE(offsets[r + 1] >= offsets[r], op, ": row_offsets must be non-decreasing, got ", offsets[r],
                      " then ", offsets[r + 1], " at row ", r);
  }
  for (int64_t p = 0; p < nnz; ++p) {
    TORCH_CHECK_INDEX(cols[p] >= 0 && cols[p] < num_features, op, ": col_indices holds ", cols[p],
                      ", out of range for ", num_features, " features (at position ", p, ")");
  }
}

struct Csr {
  at::Tensor cols, offsets;  // int64, contiguous
  int64_t batch, nnz;
};

Csr checked_csr(const char* op, const at::Tensor& values, const at::Tensor& cols_in, const at::Tensor& offsets_in,
                const at::Tensor& w, const at::Tensor& v) {
  check_inputs(op, values, cols_in, offsets_in, w, v);
  Csr csr{cols_in.to(at::kLong).contiguous(), offsets_in.to(at::kLong).contiguous(), offsets_in.size(0) - 1,
          values.size(0)};
  check_structure(op, csr.offsets.const_data_ptr<int64_t>(), csr.batch, csr.cols.const_data_ptr<int64_t>(), csr.nnz,
                  v.size(0));
  return csr;
}

// s_k of row r into s (k entries); returns the linear term sum_p w[c_p] x_p, and q_k into sum_sq when given.
template <typename scalar_t, typename acc_t>
acc_t row_sums(const scalar_t* values, const int64_t* cols, const int64_t* offsets, const scalar_t* w,
               const scalar_t* v, int64_t k_dim, int64_t r, acc_t* __restrict__ s, acc_t* __restrict__ q) {
  std::fill(s, s + k_dim, acc_t(0));
  if (q) std::fill(q, q + k_dim, acc_t(0));
  acc_t linear = 0;
  for (int64_t p = offsets[r]; p < offsets[r + 1]; ++p) {
    const acc_t x = values[p];
    const scalar_t* __restrict__ vc = v + cols[p] * k_dim;
    linear += acc_t(w[cols[p]]) * x;
    if (q) {
#pragma omp simd
      for (int64_t k = 0; k < k_dim; ++k) {
        const acc_t t = acc_t(vc[k]) * x;
        s[k] += t;
        q[k] += t * t;
      }
    } else {
#pragma omp simd
      for (int64_t k = 0; k < k_dim; ++k) s[k] += acc_t(vc[k]) * x;
    }
  }
  return linear;
}

at::Tensor sparse_fm_cpu(const at::Tensor& values_in, const at::Tensor& cols_in, const at::Tensor& offsets_in,
                         const at::Tensor& w0, const at::Tensor& w_in, const at::Tensor& v_in) {
  const Csr csr = checked_csr("sparse_fm", values_in, cols_in, offsets_in, w_in, v_in);
  TORCH_CHECK_VALUE(w0.numel() == 1, "sparse_fm: w0 must hold one element, got shape ", w0.sizes());
  const at::Tensor values = values_in.contiguous(), w = w_in.contiguous(), v = v_in.contiguous();
  at::Tensor out = at::empty({csr.batch}, values.options());
  const int64_t k_dim = v.size(1);
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "sparse_fm_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t bias = w0.to(values.scalar_type()).item<scalar_t>();
    const scalar_t* x = values.const_data_ptr<scalar_t>();
    const int64_t* cols = csr.cols.const_data_ptr<int64_t>();
    const int64_t* offsets = csr.offsets.const_data_ptr<int64_t>();
    scalar_t* y = out.mutable_data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, kFastrecMinWorkPerThread / std::max<int64_t>(1, (csr.nnz / std::max<int64_t>(1, csr.batch) + 1) * k_dim));
    at::parallel_for(0, csr.batch, grain, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> scratch(2 * k_dim);
      for (int64_t r = begin; r < end; ++r) {
        const acc_t linear = row_sums(x, cols, offsets, w.const_data_ptr<scalar_t>(), v.const_data_ptr<scalar_t>(),
                                      k_dim, r, scratch.data(), scratch.data() + k_dim);
        acc_t pairs = 0;
        for (int64_t k = 0; k < k_dim; ++k) pairs += scratch[k] * scratch[k] - scratch[k_dim + k];
        y[r] = static_cast<scalar_t>(bias + linear + acc_t(0.5) * pairs);
      }
    });
  });
  return out;
}

// Positions 0..nnz-1 stably sorted by feature id (LSD radix sort, 11-bit digits over the bits num_features needs).
std::vector<int64_t> positions_by_feature(const int64_t* cols, int64_t nnz, int64_t num_features) {
  std::vector<int64_t> order(nnz), next(nnz);
  for (int64_t p = 0; p < nnz; ++p) order[p] = p;
  constexpr int kBits = 11;
  int bits = 0;
  while (bits < 63 && (int64_t(1) << bits) < num_features) ++bits;
  for (int shift = 0; shift < bits; shift += kBits) {
    std::vector<int64_t> count((1 << kBits) + 1, 0);
    for (int64_t p = 0; p < nnz; ++p) ++count[((cols[p] >> shift) & ((1 << kBits) - 1)) + 1];
    for (int d = 0; d < (1 << kBits); ++d) count[d + 1] += count[d];
    for (int64_t p : order) next[count[(cols[p] >> shift) & ((1 << kBits) - 1)]++] = p;
    order.swap(next);
  }
  return order;
}

template <typename scalar_t>
void backward_kernel(const scalar_t* x, const scalar_t* g, const int64_t* cols, const int64_t* offsets,
                     const scalar_t* wp, const scalar_t* vp, int64_t batch, int64_t nnz, int64_t k_dim,
                     const std::vector<int64_t>& order, const std::vector<int64_t>& segment_starts,
                     int64_t* row_ids, scalar_t* grad_w0, scalar_t* gw, scalar_t* gv) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t touched = static_cast<int64_t>(segment_starts.size()) - 1;
  // s of every row, and the row of every position
  std::vector<acc_t> sums(batch * k_dim);
  std::vector<int64_t> row_of(nnz);
  at::parallel_for(0, batch, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      row_sums<scalar_t, acc_t>(x, cols, offsets, wp, vp, k_dim, r, sums.data() + r * k_dim, nullptr);
      std::fill(row_of.begin() + offsets[r], row_of.begin() + offsets[r + 1], r);
    }
  });
  acc_t total = 0;
  for (int64_t r = 0; r < batch; ++r) total += acc_t(g[r]);
  grad_w0[0] = static_cast<scalar_t>(total);

  at::parallel_for(0, touched, 16, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(k_dim);
    for (int64_t u = begin; u < end; ++u) {
      const int64_t feature = cols[order[segment_starts[u]]];
      const scalar_t* __restrict__ vc = vp + feature * k_dim;
      std::fill(acc.begin(), acc.end(), acc_t(0));
      acc_t linear = 0;
      for (int64_t i = segment_starts[u]; i < segment_starts[u + 1]; ++i) {
        const int64_t p = order[i], r = row_of[p];
        const acc_t gr = g[r], xp = x[p];
        const acc_t* __restrict__ s = sums.data() + r * k_dim;
        linear += gr * xp;
        acc_t* __restrict__ a = acc.data();
#pragma omp simd
        for (int64_t k = 0; k < k_dim; ++k) a[k] += v_partial(gr, xp, s[k], acc_t(vc[k]));
      }
      row_ids[u] = feature;
      gw[u] = static_cast<scalar_t>(linear);
      for (int64_t k = 0; k < k_dim; ++k) gv[u * k_dim + k] = static_cast<scalar_t>(acc[k]);
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> sparse_fm_backward_cpu(
    const at::Tensor& grad_out_in, const at::Tensor& values_in, const at::Tensor& cols_in,
    const at::Tensor& offsets_in, const at::Tensor& w_in, const at::Tensor& v_in) {
  const Csr csr = checked_csr("sparse_fm_backward", values_in, cols_in, offsets_in, w_in, v_in);
  TORCH_CHECK_VALUE(grad_out_in.dim() == 1 && grad_out_in.size(0) == csr.batch,
                    "sparse_fm_backward: grad_out must have shape [batch=", csr.batch, "], got ", grad_out_in.sizes());
  TORCH_CHECK_TYPE(grad_out_in.scalar_type() == values_in.scalar_type(), "sparse_fm_backward: grad_out dtype ",
                   grad_out_in.scalar_type(), " must match ", values_in.scalar_type());
  const at::Tensor values = values_in.contiguous(), w = w_in.contiguous(), v = v_in.contiguous();
  const at::Tensor grad_out = grad_out_in.contiguous();
  const int64_t k_dim = v.size(1), batch = csr.batch, nnz = csr.nnz;
  const int64_t* cols = csr.cols.const_data_ptr<int64_t>();
  const int64_t* offsets = csr.offsets.const_data_ptr<int64_t>();

  const std::vector<int64_t> order = positions_by_feature(cols, nnz, v.size(0));
  std::vector<int64_t> segment_starts;  // into order: where each touched feature's run begins
  for (int64_t i = 0; i < nnz; ++i) {
    if (i == 0 || cols[order[i]] != cols[order[i - 1]]) segment_starts.push_back(i);
  }
  const int64_t touched = static_cast<int64_t>(segment_starts.size());
  segment_starts.push_back(nnz);

  at::Tensor rows = at::empty({touched}, csr.cols.options());
  at::Tensor grad_w0 = at::empty({1}, values.options());
  at::Tensor grad_w = at::empty({touched}, values.options()), grad_v = at::empty({touched, k_dim}, values.options());
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "sparse_fm_backward_cpu", [&] {
    backward_kernel<scalar_t>(values.const_data_ptr<scalar_t>(), grad_out.const_data_ptr<scalar_t>(), cols, offsets,
                              w.const_data_ptr<scalar_t>(), v.const_data_ptr<scalar_t>(), batch, nnz, k_dim, order,
                              segment_starts, rows.mutable_data_ptr<int64_t>(), grad_w0.mutable_data_ptr<scalar_t>(),
                              grad_w.mutable_data_ptr<scalar_t>(), grad_v.mutable_data_ptr<scalar_t>());
  });
  return {grad_w0, rows, grad_w, grad_v};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CPU, m) {
  m.impl("sparse_fm", &sparse_fm_cpu);
  m.impl("sparse_fm_backward", &sparse_fm_backward_cpu);
}

}  // namespace fastrec::sparse_fm
