// CUDA kernels of the FM interaction: one warp per batch row, lanes over embed_dim, loop over fields.
// Same math as the CPU kernel (interaction/fm.h). Compiled in CI as a check; not yet run on a GPU.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "interaction/fm.h"

namespace fastrec::fm {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t x) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) x += __shfl_down_sync(0xffffffffu, x, offset);
  return x;  // complete in lane 0
}

template <typename scalar_t>
struct Inputs {
  const scalar_t* emb;
  int64_t emb_stride_b, emb_stride_f;
  const scalar_t* values;  // nullptr: all ones
  int64_t values_stride_b, values_stride_f;
  int64_t batch, fields, dim;

  __device__ scalar_t at(int64_t b, int64_t f, int64_t k) const { return emb[b * emb_stride_b + f * emb_stride_f + k]; }
  __device__ scalar_t value(int64_t b, int64_t f) const {
    return values ? values[b * values_stride_b + f * values_stride_f] : scalar_t(1);
  }
};

template <typename scalar_t>
Inputs<scalar_t> make_inputs(const at::Tensor& e, const std::optional<at::Tensor>& v) {
  return {e.const_data_ptr<scalar_t>(),
          e.stride(0),
          e.stride(1),
          v.has_value() ? v->const_data_ptr<scalar_t>() : nullptr,
          v.has_value() ? v->stride(0) : 0,
          v.has_value() ? v->stride(1) : 0,
          e.size(0),
          e.size(1),
          e.size(2)};
}

template <typename scalar_t>
__global__ void forward_kernel(Inputs<scalar_t> in, bool reduce, scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t b = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (b >= in.batch) return;
  acc_t total = 0;
  for (int64_t k = lane; k < in.dim; k += kWarp) {
    acc_t sum = 0, sum_sq = 0;
    for (int64_t f = 0; f < in.fields; ++f) {
      const acc_t x = acc_t(in.value(b, f)) * acc_t(in.at(b, f, k));
      sum += x;
      sum_sq += x * x;
    }
    const acc_t y = pair_term(sum, sum_sq);
    if (reduce) {
      total += y;
    } else {
      out[b * in.dim + k] = static_cast<scalar_t>(y);
    }
  }
  if (reduce) {
    total = warp_sum(total);
    if (lane == 0) out[b] = static_cast<scalar_t>(total);
  }
}

// Each lane keeps the sums of its k's in registers: the kernel supports embed_dim <= kWarp * kMaxPerLane.
constexpr int kMaxPerLane = 16;

template <typename scalar_t>
__global__ void backward_kernel(Inputs<scalar_t> in, const scalar_t* __restrict__ grad_out, int64_t g_stride_b,
                                int64_t g_stride_k, scalar_t* __restrict__ grad_emb, scalar_t* __restrict__ grad_values) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t b = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (b >= in.batch) return;
  acc_t sum[kMaxPerLane], grad[kMaxPerLane];
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t k = lane + int64_t(i) * kWarp;
    sum[i] = 0;
    grad[i] = k < in.dim ? acc_t(grad_out[b * g_stride_b + k * g_stride_k]) : acc_t(0);
  }
  for (int64_t f = 0; f < in.fields; ++f) {
    const acc_t v = in.value(b, f);
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int64_t k = lane + int64_t(i) * kWarp;
      if (k < in.dim) sum[i] += v * acc_t(in.at(b, f, k));
    }
  }
  for (int64_t f = 0; f < in.fields; ++f) {
    const acc_t v = in.value(b, f);
    acc_t gv = 0;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int64_t k = lane + int64_t(i) * kWarp;
      if (k < in.dim) {
        const acc_t e = in.at(b, f, k);
        const acc_t d = scaled_partial(grad[i], sum[i], v * e);
        grad_emb[(b * in.fields + f) * in.dim + k] = static_cast<scalar_t>(v * d);
        gv += e * d;
      }
    }
    if (grad_values != nullptr) {
      gv = warp_sum(gv);
      if (lane == 0) grad_values[b * in.fields + f] = static_cast<scalar_t>(gv);
    }
  }
}

unsigned int num_blocks(int64_t batch) { return static_cast<unsigned int>((batch + kWarpsPerBlock - 1) / kWarpsPerBlock); }

at::Tensor fm_interaction_cuda(const at::Tensor& emb_in, const std::optional<at::Tensor>& values, bool reduce) {
  check_inputs("fm_interaction", emb_in, values);
  const at::Tensor emb = with_unit_last_stride(emb_in);
  const c10::cuda::CUDAGuard guard(emb.device());
  at::Tensor out = empty_output(emb, reduce);
  if (emb.size(0) == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "fm_interaction_cuda", [&] {
    forward_kernel<scalar_t><<<num_blocks(emb.size(0)), kWarp * kWarpsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
        make_inputs<scalar_t>(emb, values), reduce, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> fm_interaction_backward_cuda(const at::Tensor& grad_out, const at::Tensor& emb_in,
                                                                const std::optional<at::Tensor>& values, bool reduce) {
  check_inputs("fm_interaction_backward", emb_in, values);
  check_grad_out(grad_out, emb_in, reduce);
  TORCH_CHECK_VALUE(emb_in.size(2) <= kWarp * kMaxPerLane, "fm_interaction_backward: the CUDA kernel supports embed_dim <= ",
                    kWarp * kMaxPerLane, ", got ", emb_in.size(2));
  const at::Tensor emb = with_unit_last_stride(emb_in);
  const c10::cuda::CUDAGuard guard(emb.device());
  auto [grad_emb, grad_values] = empty_grads(emb, values);
  if (emb.size(0) == 0) return {grad_emb, grad_values};
  AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "fm_interaction_backward_cuda", [&] {
    backward_kernel<scalar_t><<<num_blocks(emb.size(0)), kWarp * kWarpsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
        make_inputs<scalar_t>(emb, values), grad_out.const_data_ptr<scalar_t>(), grad_out.stride(0),
        reduce ? 0 : grad_out.stride(1), grad_emb.mutable_data_ptr<scalar_t>(),
        values.has_value() ? grad_values.mutable_data_ptr<scalar_t>() : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_emb, grad_values};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CUDA, m) {
  m.impl("fm_interaction", &fm_interaction_cuda);
  m.impl("fm_interaction_backward", &fm_interaction_backward_cuda);
}

}  // namespace fastrec::fm
