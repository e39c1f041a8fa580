// CUDA kernels of the FM over CSR input (interaction/sparse_fm.h). Forward: one warp per row, lanes over k.
// Backward: each nonzero's gradient contribution (same formula as the CPU kernel), then summed per touched feature
// after a stable sort by feature id. Compiled in CI as a check; not yet run on a GPU.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/any.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/index_add.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/unique_consecutive.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "interaction/sparse_fm.h"

namespace fastrec::sparse_fm {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;
constexpr int kThreads = 256;

unsigned int warp_blocks(int64_t rows) { return static_cast<unsigned int>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock); }
unsigned int thread_blocks(int64_t n) { return static_cast<unsigned int>((n + kThreads - 1) / kThreads); }

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t x) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) x += __shfl_down_sync(0xffffffffu, x, offset);
  return x;
}

// One warp per row: y (when out is given), the row's s_k (when sums is given) and each nonzero's row id.
template <typename scalar_t>
__global__ void rows_kernel(const scalar_t* __restrict__ values, const int64_t* __restrict__ cols,
                            const int64_t* __restrict__ offsets, const scalar_t* __restrict__ w0,
                            const scalar_t* __restrict__ w, const scalar_t* __restrict__ v, int64_t batch,
                            int64_t k_dim, scalar_t* __restrict__ out, at::opmath_type<scalar_t>* __restrict__ sums,
                            int64_t* __restrict__ row_of) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= batch) return;
  const int64_t begin = offsets[r], end = offsets[r + 1];
  acc_t linear = 0, pairs = 0;
  for (int64_t p = begin + lane; p < end; p += kWarp) {
    linear += acc_t(w[cols[p]]) * acc_t(values[p]);
    if (row_of) row_of[p] = r;
  }
  for (int64_t k = lane; k < k_dim; k += kWarp) {
    acc_t s = 0, q = 0;
    for (int64_t p = begin; p < end; ++p) {
      const acc_t t = acc_t(v[cols[p] * k_dim + k]) * acc_t(values[p]);
      s += t;
      q += t * t;
    }
    pairs += s * s - q;
    if (sums) sums[r * k_dim + k] = s;
  }
  linear = warp_sum(linear);
  pairs = warp_sum(pairs);
  if (out && lane == 0) out[r] = static_cast<scalar_t>(acc_t(w0[0]) + linear + acc_t(0.5) * pairs);
}

// One thread per (nonzero, column): column 0 of contrib_w and the k columns of contrib_v.
template <typename scalar_t>
__global__ void contributions_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ values,
                                     const int64_t* __restrict__ cols, const int64_t* __restrict__ row_of,
                                     const scalar_t* __restrict__ v, const at::opmath_type<scalar_t>* __restrict__ sums,
                                     int64_t nnz, int64_t k_dim, scalar_t* __restrict__ contrib_w,
                                     scalar_t* __restrict__ contrib_v) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= nnz * k_dim) return;
  const int64_t p = id / k_dim, k = id % k_dim, r = row_of[p];
  const acc_t g = grad_out[r], x = values[p];
  if (k == 0) contrib_w[p] = static_cast<scalar_t>(g * x);
  contrib_v[id] = static_cast<scalar_t>(v_partial(g, x, sums[r * k_dim + k], acc_t(v[cols[p] * k_dim + k])));
}

void check_structure(const char* op, const at::Tensor& cols, const at::Tensor& offsets, int64_t nnz,
                     int64_t num_features) {
  const int64_t batch = offsets.size(0) - 1;
  const int64_t first = offsets[0].item<int64_t>(), last = offsets[batch].item<int64_t>();
  TORCH_CHECK_VALUE(first == 0 && last == nnz, op, ": row_offsets must start at 0 and end at nnz=", nnz, ", got ",
                    first, "..", last);
  TORCH_CHECK_VALUE(batch == 0 || !offsets.slice(0, 1).lt(offsets.slice(0, 0, batch)).any().item<bool>(), op,
                    ": row_offsets must be non-decreasing");
  TORCH_CHECK_INDEX(nnz == 0 || !cols.lt(0).logical_or(cols.ge(num_features)).any().item<bool>(), op,
                    ": col_indices holds an id out of range for ", num_features, " features");
}

struct Csr {
  at::Tensor cols, offsets;
  int64_t batch, nnz;
};

Csr checked_csr(const char* op, const at::Tensor& values, const at::Tensor& cols, const at::Tensor& offsets,
                const at::Tensor& w, const at::Tensor& v) {
  check_inputs(op, values, cols, offsets, w, v);
  Csr csr{cols.to(at::kLong).contiguous(), offsets.to(at::kLong).contiguous(), offsets.size(0) - 1, values.size(0)};
  check_structure(op, csr.cols, csr.offsets, csr.nnz, v.size(0));
  return csr;
}

at::Tensor sparse_fm_cuda(const at::Tensor& values_in, const at::Tensor& cols_in, const at::Tensor& offsets_in,
                          const at::Tensor& w0, const at::Tensor& w_in, const at::Tensor& v_in) {
  const c10::cuda::CUDAGuard guard(values_in.device());
  const Csr csr = checked_csr("sparse_fm", values_in, cols_in, offsets_in, w_in, v_in);
  TORCH_CHECK_VALUE(w0.numel() == 1, "sparse_fm: w0 must hold one element, got shape ", w0.sizes());
  const at::Tensor values = values_in.contiguous(), w = w_in.contiguous(), v = v_in.contiguous();
  const at::Tensor bias = w0.reshape({1}).to(values.options());
  at::Tensor out = at::empty({csr.batch}, values.options());
  if (csr.batch == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "sparse_fm_cuda", [&] {
    rows_kernel<scalar_t><<<warp_blocks(csr.batch), kWarp * kWarpsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
        values.const_data_ptr<scalar_t>(), csr.cols.const_data_ptr<int64_t>(), csr.offsets.const_data_ptr<int64_t>(),
        bias.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), v.const_data_ptr<scalar_t>(), csr.batch,
        v.size(1), out.mutable_data_ptr<scalar_t>(), nullptr, nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> sparse_fm_backward_cuda(
    const at::Tensor& grad_out_in, const at::Tensor& values_in, const at::Tensor& cols_in,
    const at::Tensor& offsets_in, const at::Tensor& w_in, const at::Tensor& v_in) {
  const c10::cuda::CUDAGuard guard(values_in.device());
  const Csr csr = checked_csr("sparse_fm_backward", values_in, cols_in, offsets_in, w_in, v_in);
  TORCH_CHECK_VALUE(grad_out_in.dim() == 1 && grad_out_in.size(0) == csr.batch,
                    "sparse_fm_backward: grad_out must have shape [batch=", csr.batch, "], got ", grad_out_in.sizes());
  const at::Tensor values = values_in.contiguous(), w = w_in.contiguous(), v = v_in.contiguous();
  const at::Tensor grad_out = grad_out_in.contiguous().to(values.scalar_type());
  const int64_t k_dim = v.size(1);
  const at::Tensor grad_w0 = grad_out.sum().reshape({1});
  const at::Tensor contrib_w = at::empty({csr.nnz}, values.options());
  const at::Tensor contrib_v = at::empty({csr.nnz, k_dim}, values.options());
  if (csr.nnz > 0) {
    const auto acc_type = values.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor sums = at::empty({csr.batch, k_dim}, values.options().dtype(acc_type));
    at::Tensor row_of = at::empty({csr.nnz}, csr.cols.options());
    AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "sparse_fm_backward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto stream = c10::cuda::getCurrentCUDAStream();
      rows_kernel<scalar_t><<<warp_blocks(csr.batch), kWarp * kWarpsPerBlock, 0, stream>>>(
          values.const_data_ptr<scalar_t>(), csr.cols.const_data_ptr<int64_t>(), csr.offsets.const_data_ptr<int64_t>(),
          nullptr, w.const_data_ptr<scalar_t>(), v.const_data_ptr<scalar_t>(), csr.batch, k_dim, nullptr,
          sums.mutable_data_ptr<acc_t>(), row_of.mutable_data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (k_dim > 0) {
        contributions_kernel<scalar_t><<<thread_blocks(csr.nnz * k_dim), kThreads, 0, stream>>>(
            grad_out.const_data_ptr<scalar_t>(), values.const_data_ptr<scalar_t>(), csr.cols.const_data_ptr<int64_t>(),
            row_of.const_data_ptr<int64_t>(), v.const_data_ptr<scalar_t>(), sums.const_data_ptr<acc_t>(), csr.nnz,
            k_dim, contrib_w.mutable_data_ptr<scalar_t>(), contrib_v.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      } else {
        contrib_w.copy_(grad_out.index_select(0, row_of).mul(values));
      }
    });
  }
  const auto [sorted, order] = at::sort(csr.cols, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const auto [rows, inverse, counts] = at::unique_consecutive(sorted, /*return_inverse=*/true);
  at::Tensor grad_w = at::zeros({rows.size(0)}, values.options()).index_add_(0, inverse, contrib_w.index_select(0, order));
  at::Tensor grad_v =
      at::zeros({rows.size(0), k_dim}, values.options()).index_add_(0, inverse, contrib_v.index_select(0, order));
  return {grad_w0, rows, grad_w, grad_v};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CUDA, m) {
  m.impl("sparse_fm", &sparse_fm_cuda);
  m.impl("sparse_fm_backward", &sparse_fm_backward_cuda);
}

}  // namespace fastrec::sparse_fm
