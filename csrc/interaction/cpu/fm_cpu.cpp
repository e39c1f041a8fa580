// CPU kernels of the FM interaction: one pass over each [F, K] row of emb, parallel over the batch,
// the K loop vectorized (omp simd) with float32/float64 accumulation (at::opmath_type).
//
// The kernels are compiled for the common embedding dims and for inputs with and without field values
// (dispatch_variant): with K a compile-time constant the row accumulators stay in registers, and without a
// per-field "values or ones" branch GCC vectorizes the field loop. At B=4096, F=39, K=16 that made the forward
// 1.6x faster than the one runtime-K kernel, which remains for other dims.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <type_traits>
#include <vector>

#include "common/reusable_buffer.h"
#include "interaction/fm.h"

namespace fastrec::fm {
namespace {

// Strided views of the inputs; the last dim of emb has unit stride (with_unit_last_stride).
template <typename scalar_t>
struct Inputs {
  const scalar_t* emb;
  int64_t emb_stride_b, emb_stride_f;
  const scalar_t* values;  // nullptr: all ones
  int64_t values_stride_b, values_stride_f;
  int64_t batch, fields, dim;

  Inputs(const at::Tensor& e, const std::optional<at::Tensor>& v)
      : emb(e.const_data_ptr<scalar_t>()),
        emb_stride_b(e.stride(0)),
        emb_stride_f(e.stride(1)),
        values(v.has_value() ? v->const_data_ptr<scalar_t>() : nullptr),
        values_stride_b(v.has_value() ? v->stride(0) : 0),
        values_stride_f(v.has_value() ? v->stride(1) : 0),
        batch(e.size(0)),
        fields(e.size(1)),
        dim(e.size(2)) {}

  const scalar_t* row(int64_t b, int64_t f) const { return emb + b * emb_stride_b + f * emb_stride_f; }
  template <bool kValues>
  scalar_t value(int64_t b, int64_t f) const {
    if constexpr (kValues) {
      return values[b * values_stride_b + f * values_stride_f];
    } else {
      return scalar_t(1);
    }
  }
  int64_t grain() const { return std::max<int64_t>(1, kFastrecMinWorkPerThread / std::max<int64_t>(1, fields * dim)); }
};

// Calls body(std::integral_constant<int64_t, kDim>, std::bool_constant<kValues>) for the input's variant;
// kDim = 0 means K is read at run time.
template <typename Body>
void dispatch_variant(int64_t dim, bool has_values, Body&& body) {
  auto with_dim = [&](auto values) {
    switch (dim) {
      case 8: return body(std::integral_constant<int64_t, 8>{}, values);
      case 16: return body(std::integral_constant<int64_t, 16>{}, values);
      case 32: return body(std::integral_constant<int64_t, 32>{}, values);
      case 64: return body(std::integral_constant<int64_t, 64>{}, values);
      default: return body(std::integral_constant<int64_t, 0>{}, values);
    }
  };
  return has_values ? with_dim(std::true_type{}) : with_dim(std::false_type{});
}

// Runs row_fn(b, first, second) for b in [begin, end) with two K-length accumulators: arrays local to each row
// when K is a compile-time constant (so they can live in registers), one reused heap buffer otherwise.
template <typename acc_t, int64_t kDim, typename RowFn>
inline void for_each_row(int64_t begin, int64_t end, int64_t dim, RowFn&& row_fn) {
  if constexpr (kDim > 0) {
    for (int64_t b = begin; b < end; ++b) {
      acc_t first[kDim], second[kDim];
      row_fn(b, first, second);
    }
  } else {
    std::vector<acc_t> scratch(2 * dim);
    for (int64_t b = begin; b < end; ++b) row_fn(b, scratch.data(), scratch.data() + dim);
  }
}

// s_k = sum_f v_f e_fk and, with kSquares, q_k = sum_f (v_f e_fk)^2 for batch row b.
template <int64_t kDim, bool kValues, bool kSquares, typename scalar_t, typename acc_t>
inline void row_sums(const Inputs<scalar_t>& in, int64_t b, acc_t* __restrict__ sum, acc_t* __restrict__ sum_sq) {
  const int64_t K = kDim > 0 ? kDim : in.dim;
  for (int64_t k = 0; k < K; ++k) sum[k] = acc_t(0);
  if constexpr (kSquares) {
    for (int64_t k = 0; k < K; ++k) sum_sq[k] = acc_t(0);
  }
  for (int64_t f = 0; f < in.fields; ++f) {
    const scalar_t* __restrict__ e = in.row(b, f);
    const acc_t v = in.template value<kValues>(b, f);
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) {
      const acc_t x = v * acc_t(e[k]);
      sum[k] += x;
      if constexpr (kSquares) sum_sq[k] += x * x;
    }
  }
}

template <int64_t kDim, bool kValues, typename scalar_t>
void forward_kernel(const Inputs<scalar_t>& in, bool reduce, scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t K = kDim > 0 ? kDim : in.dim;
  at::parallel_for(0, in.batch, in.grain(), [&](int64_t begin, int64_t end) {
    for_each_row<acc_t, kDim>(begin, end, K, [&](int64_t b, acc_t* __restrict__ sum, acc_t* __restrict__ sum_sq) {
      row_sums<kDim, kValues, true>(in, b, sum, sum_sq);
      if (reduce) {
        acc_t total = 0;
#pragma omp simd reduction(+ : total)
        for (int64_t k = 0; k < K; ++k) total += pair_term(sum[k], sum_sq[k]);
        out[b] = static_cast<scalar_t>(total);
      } else {
        scalar_t* __restrict__ y = out + b * K;
#pragma omp simd
        for (int64_t k = 0; k < K; ++k) y[k] = static_cast<scalar_t>(pair_term(sum[k], sum_sq[k]));
      }
    });
  });
}

// The row's sums are recomputed from emb rather than saved by the forward: the row is then in L1, so each
// element of emb is read from memory once and no [B, K] buffer has to live between forward and backward.
template <int64_t kDim, bool kValues, typename scalar_t>
void backward_kernel(const Inputs<scalar_t>& in, const at::Tensor& grad_out, bool reduce, scalar_t* __restrict__ grad_emb,
                     scalar_t* __restrict__ grad_values) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t F = in.fields, K = kDim > 0 ? kDim : in.dim;
  const scalar_t* g = grad_out.const_data_ptr<scalar_t>();
  const int64_t g_stride_b = grad_out.stride(0), g_stride_k = reduce ? 0 : grad_out.stride(1);
  at::parallel_for(0, in.batch, in.grain(), [&](int64_t begin, int64_t end) {
    for_each_row<acc_t, kDim>(begin, end, K, [&](int64_t b, acc_t* __restrict__ sum, acc_t* __restrict__ grad_k) {
      row_sums<kDim, kValues, false>(in, b, sum, static_cast<acc_t*>(nullptr));
      for (int64_t k = 0; k < K; ++k) grad_k[k] = g[b * g_stride_b + k * g_stride_k];
      for (int64_t f = 0; f < F; ++f) {
        const scalar_t* __restrict__ e = in.row(b, f);
        scalar_t* __restrict__ ge = grad_emb + (b * F + f) * K;
        const acc_t v = in.template value<kValues>(b, f);
        if constexpr (kValues) {
          acc_t gv = 0;
#pragma omp simd reduction(+ : gv)
          for (int64_t k = 0; k < K; ++k) {
            const acc_t d = scaled_partial(grad_k[k], sum[k], v * acc_t(e[k]));
            ge[k] = static_cast<scalar_t>(v * d);
            gv += acc_t(e[k]) * d;
          }
          grad_values[b * F + f] = static_cast<scalar_t>(gv);
        } else {
#pragma omp simd
          for (int64_t k = 0; k < K; ++k) ge[k] = static_cast<scalar_t>(scaled_partial(grad_k[k], sum[k], acc_t(e[k])));
        }
      }
    });
  });
}

at::Tensor fm_interaction_cpu(const at::Tensor& emb_in, const std::optional<at::Tensor>& values, bool reduce) {
  check_inputs("fm_interaction", emb_in, values);
  const at::Tensor emb = with_unit_last_stride(emb_in);
  at::Tensor out = empty_output(emb, reduce);
  AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "fm_interaction_cpu", [&] {
    dispatch_variant(emb.size(2), values.has_value(), [&](auto dim, auto has_values) {
      forward_kernel<dim(), has_values()>(Inputs<scalar_t>(emb, values), reduce, out.mutable_data_ptr<scalar_t>());
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> fm_interaction_backward_cpu(const at::Tensor& grad_out, const at::Tensor& emb_in,
                                                               const std::optional<at::Tensor>& values, bool reduce) {
  check_inputs("fm_interaction_backward", emb_in, values);
  check_grad_out(grad_out, emb_in, reduce);
  const at::Tensor emb = with_unit_last_stride(emb_in);
  // The gradients are written once, front to back: into the previous call's memory when it is free again.
  static ReusableBuffer grad_emb_buffer, grad_values_buffer;
  at::Tensor grad_emb = grad_emb_buffer.get(emb.sizes(), emb.options());
  at::Tensor grad_values = values.has_value() ? grad_values_buffer.get(values->sizes(), emb.options())
                                              : at::empty({0}, emb.options());
  AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "fm_interaction_backward_cpu", [&] {
    dispatch_variant(emb.size(2), values.has_value(), [&](auto dim, auto has_values) {
      backward_kernel<dim(), has_values()>(Inputs<scalar_t>(emb, values), grad_out, reduce,
                                           grad_emb.mutable_data_ptr<scalar_t>(),
                                           values.has_value() ? grad_values.mutable_data_ptr<scalar_t>() : nullptr);
    });
  });
  return {grad_emb, grad_values};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CPU, m) {
  m.impl("fm_interaction", &fm_interaction_cpu);
  m.impl("fm_interaction_backward", &fm_interaction_backward_cpu);
}

}  // namespace fastrec::fm
