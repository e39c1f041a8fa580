// CUDA kernels of the field-aware FM and DLRM's dot interaction (interaction/pairwise.h): one warp per sample, lanes
// over the pairs' second index, the same pair order and math as the CPU kernels. Compiled in CI as a check; not yet
// run on a GPU.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "interaction/pairwise.h"

namespace fastrec::pairwise {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;
constexpr int kThreads = 256;

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t x) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) x += __shfl_down_sync(0xffffffffu, x, offset);
  return x;  // complete in lane 0
}

unsigned int warp_blocks(int64_t batch) { return static_cast<unsigned int>((batch + kWarpsPerBlock - 1) / kWarpsPerBlock); }
unsigned int thread_blocks(int64_t n) { return static_cast<unsigned int>((n + kThreads - 1) / kThreads); }

template <typename scalar_t>
__global__ void ffm_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ values, int64_t B,
                                   int64_t F, int64_t K, bool reduce, scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t b = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (b >= B) return;
  const scalar_t* xb = x + b * F * F * K;
  const int64_t P = F * (F - 1) / 2;
  acc_t total = 0;
  for (int64_t i = 0; i < F; ++i) {
    for (int64_t j = i + 1 + lane; j < F; j += kWarp) {
      const scalar_t* a = xb + (i * F + j) * K;
      const scalar_t* c = xb + (j * F + i) * K;
      acc_t dot = 0;
      for (int64_t k = 0; k < K; ++k) dot += acc_t(a[k]) * acc_t(c[k]);
      if (values) dot *= acc_t(values[b * F + i]) * acc_t(values[b * F + j]);
      if (reduce) {
        total += dot;
      } else {
        out[b * P + upper_pair(i, j, F)] = static_cast<scalar_t>(dot);
      }
    }
  }
  if (reduce) {
    total = warp_sum(total);
    if (lane == 0) out[b] = static_cast<scalar_t>(total);
  }
}

template <typename scalar_t>
__global__ void ffm_backward_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ x,
                                    const scalar_t* __restrict__ values, int64_t B, int64_t F, int64_t K, bool reduce,
                                    scalar_t* __restrict__ grad_x, scalar_t* __restrict__ grad_values) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t b = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (b >= B) return;
  const scalar_t* xb = x + b * F * F * K;
  scalar_t* gxb = grad_x + b * F * F * K;
  const int64_t P = F * (F - 1) / 2;
  for (int64_t i = 0; i < F; ++i) {
    for (int64_t k = lane; k < K; k += kWarp) gxb[(i * F + i) * K + k] = scalar_t(0);
    for (int64_t j = i + 1 + lane; j < F; j += kWarp) {
      const scalar_t* a = xb + (i * F + j) * K;
      const scalar_t* c = xb + (j * F + i) * K;
      const acc_t g = reduce ? acc_t(grad_out[b]) : acc_t(grad_out[b * P + upper_pair(i, j, F)]);
      const acc_t vi = values ? acc_t(values[b * F + i]) : acc_t(1), vj = values ? acc_t(values[b * F + j]) : acc_t(1);
      const acc_t scale = g * vi * vj;
      acc_t dot = 0;
      for (int64_t k = 0; k < K; ++k) {
        gxb[(i * F + j) * K + k] = static_cast<scalar_t>(scale * acc_t(c[k]));
        gxb[(j * F + i) * K + k] = static_cast<scalar_t>(scale * acc_t(a[k]));
        dot += acc_t(a[k]) * acc_t(c[k]);
      }
      if (grad_values) {  // grad_values starts at zero; several lanes add to the same field
        atomicAdd(grad_values + b * F + i, static_cast<scalar_t>(g * dot * vj));
        atomicAdd(grad_values + b * F + j, static_cast<scalar_t>(g * dot * vi));
      }
    }
  }
}

at::Tensor ffm_interaction_cuda(const at::Tensor& x_in, const std::optional<at::Tensor>& values_in, bool reduce) {
  check_ffm("ffm_interaction", x_in, values_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const std::optional<at::Tensor> values =
      values_in.has_value() ? std::optional<at::Tensor>(values_in->contiguous()) : std::nullopt;
  const int64_t B = x.size(0), F = x.size(1), K = x.size(3);
  at::Tensor out = reduce ? at::empty({B}, x.options()) : at::empty({B, F * (F - 1) / 2}, x.options());
  if (B == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ffm_interaction_cuda", [&] {
    ffm_forward_kernel<scalar_t><<<warp_blocks(B), kWarp * kWarpsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
        x.const_data_ptr<scalar_t>(), values ? values->const_data_ptr<scalar_t>() : nullptr, B, F, K, reduce,
        out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> ffm_interaction_backward_cuda(const at::Tensor& grad_out_in, const at::Tensor& x_in,
                                                                 const std::optional<at::Tensor>& values_in,
                                                                 bool reduce) {
  check_ffm("ffm_interaction_backward", x_in, values_in);
  const int64_t B = x_in.size(0), F = x_in.size(1), K = x_in.size(3);
  const std::vector<int64_t> out_shape = reduce ? std::vector<int64_t>{B} : std::vector<int64_t>{B, F * (F - 1) / 2};
  check_grad("ffm_interaction_backward", grad_out_in, out_shape, x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), grad_out = grad_out_in.contiguous();
  const std::optional<at::Tensor> values =
      values_in.has_value() ? std::optional<at::Tensor>(values_in->contiguous()) : std::nullopt;
  at::Tensor grad_x = at::empty(x.sizes(), x.options());
  at::Tensor grad_values = values ? at::zeros({B, F}, x.options()) : at::empty({0}, x.options());
  if (B == 0) return {grad_x, grad_values};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ffm_interaction_backward_cuda", [&] {
    ffm_backward_kernel<scalar_t><<<warp_blocks(B), kWarp * kWarpsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
        grad_out.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
        values ? values->const_data_ptr<scalar_t>() : nullptr, B, F, K, reduce, grad_x.mutable_data_ptr<scalar_t>(),
        values ? grad_values.mutable_data_ptr<scalar_t>() : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_x, grad_values};
}

template <typename scalar_t>
struct DotInputs {
  const scalar_t* dense;
  const scalar_t* sparse;
  int64_t S, D;
  __device__ const scalar_t* row(int64_t b, int64_t r) const {
    return r == 0 ? dense + b * D : sparse + (b * S + r - 1) * D;
  }
};

template <typename scalar_t>
__global__ void dot_forward_kernel(DotInputs<scalar_t> in, int64_t B, bool self_interaction, bool concat_dense,
                                   scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t b = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (b >= B) return;
  const int64_t N = in.S + 1, D = in.D, width = num_dot_pairs(N, self_interaction) + (concat_dense ? D : 0);
  scalar_t* o = out + b * width;
  if (concat_dense) {
    for (int64_t k = lane; k < D; k += kWarp) o[k] = in.row(b, 0)[k];
    o += D;
  }
  for (int64_t i = 0; i < N; ++i) {
    const scalar_t* ti = in.row(b, i);
    for (int64_t j = lane; j < (self_interaction ? i + 1 : i); j += kWarp) {
      const scalar_t* tj = in.row(b, j);
      acc_t dot = 0;
      for (int64_t k = 0; k < D; ++k) dot += acc_t(ti[k]) * acc_t(tj[k]);
      o[lower_pair(i, j, self_interaction)] = static_cast<scalar_t>(dot);
    }
  }
}

// One thread per (b, i, k): dT[b, i, k] = sum_j g(pair of i and j) T[b, j, k] (twice for the self pair).
template <typename scalar_t>
__global__ void dot_backward_kernel(const scalar_t* __restrict__ grad_out, DotInputs<scalar_t> in, int64_t B,
                                    bool self_interaction, bool concat_dense, scalar_t* __restrict__ grad_dense,
                                    scalar_t* __restrict__ grad_sparse) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = in.S + 1, D = in.D, width = num_dot_pairs(N, self_interaction) + (concat_dense ? D : 0);
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= B * N * D) return;
  const int64_t b = id / (N * D), i = (id / D) % N, k = id % D;
  const scalar_t* g = grad_out + b * width + (concat_dense ? D : 0);
  acc_t acc = 0;
  for (int64_t j = 0; j < N; ++j) {
    if (j == i && !self_interaction) continue;
    const int64_t p = i >= j ? lower_pair(i, j, self_interaction) : lower_pair(j, i, self_interaction);
    acc += acc_t(g[p]) * acc_t(in.row(b, j)[k]) * (j == i ? acc_t(2) : acc_t(1));
  }
  if (i == 0) {
    grad_dense[b * D + k] = static_cast<scalar_t>(acc + (concat_dense ? acc_t(grad_out[b * width + k]) : acc_t(0)));
  } else {
    grad_sparse[(b * in.S + i - 1) * D + k] = static_cast<scalar_t>(acc);
  }
}

at::Tensor dot_interaction_cuda(const at::Tensor& dense_in, const at::Tensor& sparse_in, bool self_interaction,
                                bool concat_dense) {
  check_dot("dot_interaction", dense_in, sparse_in);
  const c10::cuda::CUDAGuard guard(dense_in.device());
  const at::Tensor dense = dense_in.contiguous(), sparse = sparse_in.contiguous();
  const int64_t B = dense.size(0), D = dense.size(1), S = sparse.size(1);
  at::Tensor out = at::empty({B, num_dot_pairs(S + 1, self_interaction) + (concat_dense ? D : 0)}, dense.options());
  if (B == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(dense.scalar_type(), "dot_interaction_cuda", [&] {
    dot_forward_kernel<scalar_t><<<warp_blocks(B), kWarp * kWarpsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
        {dense.const_data_ptr<scalar_t>(), sparse.const_data_ptr<scalar_t>(), S, D}, B, self_interaction,
        concat_dense, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> dot_interaction_backward_cuda(const at::Tensor& grad_out_in,
                                                                 const at::Tensor& dense_in,
                                                                 const at::Tensor& sparse_in, bool self_interaction,
                                                                 bool concat_dense) {
  check_dot("dot_interaction_backward", dense_in, sparse_in);
  const int64_t B = dense_in.size(0), D = dense_in.size(1), S = sparse_in.size(1);
  check_grad("dot_interaction_backward", grad_out_in,
             {B, num_dot_pairs(S + 1, self_interaction) + (concat_dense ? D : 0)}, dense_in);
  const c10::cuda::CUDAGuard guard(dense_in.device());
  const at::Tensor dense = dense_in.contiguous(), sparse = sparse_in.contiguous(), grad_out = grad_out_in.contiguous();
  at::Tensor grad_dense = at::empty({B, D}, dense.options()), grad_sparse = at::empty({B, S, D}, dense.options());
  if (B * (S + 1) * D == 0) return {grad_dense, grad_sparse};
  AT_DISPATCH_FLOATING_TYPES(dense.scalar_type(), "dot_interaction_backward_cuda", [&] {
    dot_backward_kernel<scalar_t><<<thread_blocks(B * (S + 1) * D), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        grad_out.const_data_ptr<scalar_t>(), {dense.const_data_ptr<scalar_t>(), sparse.const_data_ptr<scalar_t>(), S, D},
        B, self_interaction, concat_dense, grad_dense.mutable_data_ptr<scalar_t>(),
        grad_sparse.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_dense, grad_sparse};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CUDA, m) {
  m.impl("ffm_interaction", &ffm_interaction_cuda);
  m.impl("ffm_interaction_backward", &ffm_interaction_backward_cuda);
  m.impl("dot_interaction", &dot_interaction_cuda);
  m.impl("dot_interaction_backward", &dot_interaction_backward_cuda);
}

}  // namespace fastrec::pairwise
