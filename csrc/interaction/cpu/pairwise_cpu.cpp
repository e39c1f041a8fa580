// CPU kernels of the field-aware FM and of DLRM's dot interaction (interaction/pairwise.h): parallel over the batch,
// one sample's vectors (a few KB) at a time in L1, each needed pair read once, no [B, P, K] or [B, F, F]
// intermediate; the dimension loops are vectorized.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "common/reusable_buffer.h"
#include "interaction/pairwise.h"

namespace fastrec::pairwise {
namespace {

int64_t grain_for(int64_t work_per_row) {
  return std::max<int64_t>(1, kFastrecMinWorkPerThread / std::max<int64_t>(1, work_per_row));
}

template <typename scalar_t>
void ffm_forward_kernel(const scalar_t* x, const scalar_t* values, int64_t B, int64_t F, int64_t K, bool reduce,
                        scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t P = F * (F - 1) / 2;
  at::parallel_for(0, B, grain_for(F * F * K), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(K);
    for (int64_t b = begin; b < end; ++b) {
      const scalar_t* xb = x + b * F * F * K;
      const scalar_t* vb = values ? values + b * F : nullptr;
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t i = 0; i < F; ++i) {
        for (int64_t j = i + 1; j < F; ++j) {
          const scalar_t* __restrict__ a = xb + (i * F + j) * K;
          const scalar_t* __restrict__ c = xb + (j * F + i) * K;
          const acc_t w = vb ? acc_t(vb[i]) * acc_t(vb[j]) : acc_t(1);
          if (reduce) {
            acc_t* __restrict__ s = acc.data();
#pragma omp simd
            for (int64_t k = 0; k < K; ++k) s[k] += w * acc_t(a[k]) * acc_t(c[k]);
          } else {
            acc_t dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int64_t k = 0; k < K; ++k) dot += acc_t(a[k]) * acc_t(c[k]);
            out[b * P + upper_pair(i, j, F)] = static_cast<scalar_t>(w * dot);
          }
        }
      }
      if (reduce) {
        acc_t total = 0;
        for (int64_t k = 0; k < K; ++k) total += acc[k];
        out[b] = static_cast<scalar_t>(total);
      }
    }
  });
}

template <typename scalar_t>
void ffm_backward_kernel(const scalar_t* grad_out, const scalar_t* x, const scalar_t* values, int64_t B, int64_t F,
                         int64_t K, bool reduce, scalar_t* grad_x, scalar_t* grad_values) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t P = F * (F - 1) / 2;
  at::parallel_for(0, B, grain_for(F * F * K), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const scalar_t* xb = x + b * F * F * K;
      const scalar_t* vb = values ? values + b * F : nullptr;
      scalar_t* gxb = grad_x + b * F * F * K;
      scalar_t* gvb = grad_values ? grad_values + b * F : nullptr;
      if (gvb) std::fill(gvb, gvb + F, scalar_t(0));
      for (int64_t i = 0; i < F; ++i) {
        std::fill(gxb + (i * F + i) * K, gxb + (i * F + i + 1) * K, scalar_t(0));
        for (int64_t j = i + 1; j < F; ++j) {
          const scalar_t* __restrict__ a = xb + (i * F + j) * K;
          const scalar_t* __restrict__ c = xb + (j * F + i) * K;
          scalar_t* __restrict__ ga = gxb + (i * F + j) * K;
          scalar_t* __restrict__ gc = gxb + (j * F + i) * K;
          const acc_t g = reduce ? acc_t(grad_out[b]) : acc_t(grad_out[b * P + upper_pair(i, j, F)]);
          const acc_t vi = vb ? acc_t(vb[i]) : acc_t(1), vj = vb ? acc_t(vb[j]) : acc_t(1);
          const acc_t scale = g * vi * vj;
          acc_t dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int64_t k = 0; k < K; ++k) {
            ga[k] = static_cast<scalar_t>(scale * acc_t(c[k]));
            gc[k] = static_cast<scalar_t>(scale * acc_t(a[k]));
            dot += acc_t(a[k]) * acc_t(c[k]);
          }
          if (gvb) {
            gvb[i] += static_cast<scalar_t>(g * dot * vj);
            gvb[j] += static_cast<scalar_t>(g * dot * vi);
          }
        }
      }
    }
  });
}

at::Tensor ffm_interaction_cpu(const at::Tensor& x_in, const std::optional<at::Tensor>& values_in, bool reduce) {
  check_ffm("ffm_interaction", x_in, values_in);
  const at::Tensor x = x_in.contiguous();
  const std::optional<at::Tensor> values =
      values_in.has_value() ? std::optional<at::Tensor>(values_in->contiguous()) : std::nullopt;
  const int64_t B = x.size(0), F = x.size(1), K = x.size(3);
  at::Tensor out = reduce ? at::empty({B}, x.options()) : at::empty({B, F * (F - 1) / 2}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ffm_interaction_cpu", [&] {
    ffm_forward_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), values ? values->const_data_ptr<scalar_t>() : nullptr,
                                 B, F, K, reduce, out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> ffm_interaction_backward_cpu(const at::Tensor& grad_out_in, const at::Tensor& x_in,
                                                                const std::optional<at::Tensor>& values_in,
                                                                bool reduce) {
  check_ffm("ffm_interaction_backward", x_in, values_in);
  const int64_t B = x_in.size(0), F = x_in.size(1), K = x_in.size(3);
  const std::vector<int64_t> out_shape = reduce ? std::vector<int64_t>{B} : std::vector<int64_t>{B, F * (F - 1) / 2};
  check_grad("ffm_interaction_backward", grad_out_in, out_shape, x_in);
  const at::Tensor x = x_in.contiguous(), grad_out = grad_out_in.contiguous();
  const std::optional<at::Tensor> values =
      values_in.has_value() ? std::optional<at::Tensor>(values_in->contiguous()) : std::nullopt;
  static ReusableBuffer grad_x_buffer;  // [B, F, F, K]: often the largest tensor of an FFM step
  at::Tensor grad_x = grad_x_buffer.get(x.sizes(), x.options());
  at::Tensor grad_values = values ? at::empty({B, F}, x.options()) : at::empty({0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ffm_interaction_backward_cpu", [&] {
    ffm_backward_kernel<scalar_t>(grad_out.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
                                  values ? values->const_data_ptr<scalar_t>() : nullptr, B, F, K, reduce,
                                  grad_x.mutable_data_ptr<scalar_t>(),
                                  values ? grad_values.mutable_data_ptr<scalar_t>() : nullptr);
  });
  return {grad_x, grad_values};
}

// Row r of sample b's T: dense for r = 0, else sparse row r - 1.
template <typename scalar_t>
struct DotInputs {
  const scalar_t* dense;
  const scalar_t* sparse;
  int64_t S, D;
  const scalar_t* row(int64_t b, int64_t r) const { return r == 0 ? dense + b * D : sparse + (b * S + r - 1) * D; }
};

template <typename scalar_t>
void dot_forward_kernel(const DotInputs<scalar_t>& in, int64_t B, bool self_interaction, bool concat_dense,
                        scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = in.S + 1, D = in.D, P = num_dot_pairs(N, self_interaction), width = P + (concat_dense ? D : 0);
  at::parallel_for(0, B, grain_for(N * N * D / 2 + 1), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      scalar_t* o = out + b * width;
      if (concat_dense) {
        std::copy(in.row(b, 0), in.row(b, 0) + D, o);
        o += D;
      }
      for (int64_t i = 0; i < N; ++i) {
        const scalar_t* __restrict__ ti = in.row(b, i);
        for (int64_t j = 0; j < (self_interaction ? i + 1 : i); ++j) {
          const scalar_t* __restrict__ tj = in.row(b, j);
          acc_t dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int64_t k = 0; k < D; ++k) dot += acc_t(ti[k]) * acc_t(tj[k]);
          o[lower_pair(i, j, self_interaction)] = static_cast<scalar_t>(dot);
        }
      }
    }
  });
}

template <typename scalar_t>
void dot_backward_kernel(const scalar_t* grad_out, const DotInputs<scalar_t>& in, int64_t B, bool self_interaction,
                         bool concat_dense, scalar_t* grad_dense, scalar_t* grad_sparse) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = in.S + 1, D = in.D, P = num_dot_pairs(N, self_interaction), width = P + (concat_dense ? D : 0);
  at::parallel_for(0, B, grain_for(N * N * D + 1), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(N * D);  // dT of one sample
    for (int64_t b = begin; b < end; ++b) {
      const scalar_t* g = grad_out + b * width + (concat_dense ? D : 0);
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t i = 0; i < N; ++i) {
        const scalar_t* __restrict__ ti = in.row(b, i);
        acc_t* __restrict__ ai = acc.data() + i * D;
        for (int64_t j = 0; j < (self_interaction ? i + 1 : i); ++j) {
          const scalar_t* __restrict__ tj = in.row(b, j);
          acc_t* aj = acc.data() + j * D;
          const acc_t gij = g[lower_pair(i, j, self_interaction)];
          if (i == j) {
#pragma omp simd
            for (int64_t k = 0; k < D; ++k) ai[k] += 2 * gij * acc_t(ti[k]);
          } else {
#pragma omp simd
            for (int64_t k = 0; k < D; ++k) {
              ai[k] += gij * acc_t(tj[k]);
              aj[k] += gij * acc_t(ti[k]);
            }
          }
        }
      }
      const scalar_t* gd = grad_out + b * width;
      for (int64_t k = 0; k < D; ++k) grad_dense[b * D + k] = static_cast<scalar_t>(acc[k] + (concat_dense ? acc_t(gd[k]) : acc_t(0)));
      for (int64_t r = 1; r < N; ++r) {
        scalar_t* gs = grad_sparse + (b * in.S + r - 1) * D;
        for (int64_t k = 0; k < D; ++k) gs[k] = static_cast<scalar_t>(acc[r * D + k]);
      }
    }
  });
}

at::Tensor dot_interaction_cpu(const at::Tensor& dense_in, const at::Tensor& sparse_in, bool self_interaction,
                               bool concat_dense) {
  check_dot("dot_interaction", dense_in, sparse_in);
  const at::Tensor dense = dense_in.contiguous(), sparse = sparse_in.contiguous();
  const int64_t B = dense.size(0), D = dense.size(1), S = sparse.size(1);
  at::Tensor out = at::empty({B, num_dot_pairs(S + 1, self_interaction) + (concat_dense ? D : 0)}, dense.options());
  AT_DISPATCH_FLOATING_TYPES(dense.scalar_type(), "dot_interaction_cpu", [&] {
    dot_forward_kernel<scalar_t>({dense.const_data_ptr<scalar_t>(), sparse.const_data_ptr<scalar_t>(), S, D}, B,
                                 self_interaction, concat_dense, out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> dot_interaction_backward_cpu(const at::Tensor& grad_out_in, const at::Tensor& dense_in,
                                                                const at::Tensor& sparse_in, bool self_interaction,
                                                                bool concat_dense) {
  check_dot("dot_interaction_backward", dense_in, sparse_in);
  const int64_t B = dense_in.size(0), D = dense_in.size(1), S = sparse_in.size(1);
  check_grad("dot_interaction_backward", grad_out_in,
             {B, num_dot_pairs(S + 1, self_interaction) + (concat_dense ? D : 0)}, dense_in);
  const at::Tensor dense = dense_in.contiguous(), sparse = sparse_in.contiguous(), grad_out = grad_out_in.contiguous();
  at::Tensor grad_dense = at::empty({B, D}, dense.options()), grad_sparse = at::empty({B, S, D}, dense.options());
  AT_DISPATCH_FLOATING_TYPES(dense.scalar_type(), "dot_interaction_backward_cpu", [&] {
    dot_backward_kernel<scalar_t>(grad_out.const_data_ptr<scalar_t>(),
                                  {dense.const_data_ptr<scalar_t>(), sparse.const_data_ptr<scalar_t>(), S, D}, B,
                                  self_interaction, concat_dense, grad_dense.mutable_data_ptr<scalar_t>(),
                                  grad_sparse.mutable_data_ptr<scalar_t>());
  });
  return {grad_dense, grad_sparse};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CPU, m) {
  m.impl("ffm_interaction", &ffm_interaction_cpu);
  m.impl("ffm_interaction_backward", &ffm_interaction_backward_cpu);
  m.impl("dot_interaction", &dot_interaction_cpu);
  m.impl("dot_interaction_backward", &dot_interaction_backward_cpu);
}

}  // namespace fastrec::pairwise
