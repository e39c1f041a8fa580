// CUDA kernels of the CIN layer (interaction/cin.h): the (b, d) rows in tiles of at most kTileElements pair products;
// each tile's pair products are built by a kernel and multiplied by cuBLAS (at::mm), so the [B, K, H_in * F] tensor
// never exists whole. Same math and layout as the CPU kernel. Compiled in CI as a check; not yet run on a GPU.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/index_copy.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/triu_indices.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "interaction/cin.h"

namespace fastrec::cin {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kTileElements = int64_t(1) << 25;  // 128 MB of float32 pair products per tile

unsigned int blocks_for(int64_t n) { return static_cast<unsigned int>((n + kThreads - 1) / kThreads); }

// Rows t = (b, d) of a [B, K, C] tensor with unit last stride.
template <typename scalar_t>
struct Rows {
  const scalar_t* data;
  int64_t stride_b, stride_d, dim;
  __device__ const scalar_t* operator[](int64_t t) const { return data + (t / dim) * stride_b + (t % dim) * stride_d; }
};

template <typename scalar_t>
Rows<scalar_t> rows_of(const at::Tensor& t) {
  return {t.const_data_ptr<scalar_t>(), t.stride(0), t.stride(1), t.size(1)};
}

template <typename scalar_t>
struct Layer {
  Rows<scalar_t> x_prev, x0;
  bool symmetric;
  int64_t fields, hidden_in, pairs;
  __device__ int64_t factors() const { return symmetric ? fields : hidden_in; }
};

// One thread per (row, i): z[t, (i, j)] = x_prev[t, i] * x0[t, j] for the row's pairs of factor i.
template <typename scalar_t>
__global__ void pair_products_kernel(Layer<scalar_t> layer, int64_t t0, int64_t n, scalar_t* __restrict__ z) {
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= n * layer.factors()) return;
  const int64_t t = id / layer.factors(), i = id % layer.factors();
  const scalar_t* a = layer.x_prev[t0 + t];
  const scalar_t* e = layer.x0[t0 + t];
  const int64_t first = layer.symmetric ? i : 0;
  scalar_t* zi = z + t * layer.pairs + (layer.symmetric ? symmetric_pair(i, i, layer.fields) : i * layer.fields) - first;
  for (int64_t j = first; j < layer.fields; ++j) zi[j] = a[i] * e[j];
}

// One thread per (row, m): the gradient of x0[t, m] (and, in a general layer, of x_prev[t, m] for m < H_in).
template <typename scalar_t>
__global__ void input_grads_kernel(Layer<scalar_t> layer, int64_t t0, int64_t n, const scalar_t* __restrict__ dz,
                                   scalar_t* __restrict__ grad_x_prev, scalar_t* __restrict__ grad_x0) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t width = layer.symmetric || layer.fields > layer.hidden_in ? layer.fields : layer.hidden_in;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= n * width) return;
  const int64_t t = id / width, m = id % width, row = t0 + t;
  const scalar_t* a = layer.x_prev[row];
  const scalar_t* e = layer.x0[row];
  const scalar_t* d = dz + t * layer.pairs;
  const int64_t F = layer.fields;
  if (layer.symmetric) {  // pairs (m, j), j >= m and (i, m), i <= m; the diagonal counts twice
    acc_t s = 0;
    for (int64_t j = m; j < F; ++j) s += acc_t(d[symmetric_pair(m, j, F)]) * acc_t(e[j]);
    for (int64_t i = 0; i <= m; ++i) s += acc_t(d[symmetric_pair(i, m, F)]) * acc_t(e[i]);
    grad_x0[row * F + m] = static_cast<scalar_t>(s);
    return;
  }
  if (m < F) {
    acc_t s = 0;
    for (int64_t i = 0; i < layer.hidden_in; ++i) s += acc_t(d[i * F + m]) * acc_t(a[i]);
    grad_x0[row * F + m] = static_cast<scalar_t>(s);
  }
  if (m < layer.hidden_in) {
    acc_t s = 0;
    for (int64_t j = 0; j < F; ++j) s += acc_t(d[m * F + j]) * acc_t(e[j]);
    grad_x_prev[row * layer.hidden_in + m] = static_cast<scalar_t>(s);
  }
}

template <typename scalar_t>
__global__ void bias_activation_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ bias, int64_t n,
                                       int64_t hidden, Activation act) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= n) return;
  const acc_t b = bias ? acc_t(bias[id % hidden]) : acc_t(0);
  out[id] = static_cast<scalar_t>(activate(act, acc_t(out[id]) + b));
}

// dpre[t, h] = grad_out[b, d, h] * act'(out[t, h]); grad_out read through its strides.
template <typename scalar_t>
__global__ void pre_activation_grad_kernel(Rows<scalar_t> grad_out, int64_t g_stride_h, const scalar_t* __restrict__ out,
                                           int64_t n, int64_t hidden, Activation act, scalar_t* __restrict__ dpre) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= n) return;
  const int64_t t = id / hidden, h = id % hidden;
  dpre[id] = static_cast<scalar_t>(acc_t(grad_out[t][h * g_stride_h]) * derivative_from_output(act, acc_t(out[id])));
}

// Flat positions i * F + j of the triangle i <= j, in symmetric_pair order; and j * F + i of the same pairs.
std::tuple<at::Tensor, at::Tensor> triangle_positions(int64_t fields, const at::Device& device) {
  const at::Tensor ij = at::triu_indices(fields, fields, 0, at::TensorOptions().dtype(at::kLong).device(device));
  return {ij[0].mul(fields).add(ij[1]), ij[1].mul(fields).add(ij[0])};
}

at::Tensor effective_weight(const at::Tensor& weight, bool symmetric) {
  const int64_t hidden_out = weight.size(0);
  if (!symmetric) return weight.contiguous().view({hidden_out, weight.size(1) * weight.size(2)});
  const auto [upper, lower] = triangle_positions(weight.size(2), weight.device());
  const at::Tensor flat = weight.reshape({hidden_out, -1});
  const at::Tensor off_diagonal = upper.ne(lower).to(weight.scalar_type());
  return flat.index_select(1, upper).add(flat.index_select(1, lower).mul(off_diagonal));
}

template <typename scalar_t>
Layer<scalar_t> make_layer(const std::optional<at::Tensor>& x_prev, const at::Tensor& x0, int64_t pairs) {
  const bool symmetric = !x_prev.has_value();
  return {rows_of<scalar_t>(symmetric ? x0 : *x_prev), rows_of<scalar_t>(x0), symmetric, x0.size(2),
          symmetric ? x0.size(2) : x_prev->size(2), pairs};
}

int64_t tile_rows(int64_t pairs) { return std::max<int64_t>(1, kTileElements / std::max<int64_t>(1, pairs)); }

at::Tensor unit_last_stride(const at::Tensor& t) { return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous(); }

at::Tensor cin_layer_cuda(const std::optional<at::Tensor>& x_prev_in, const at::Tensor& x0_in, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias, c10::string_view activation) {
  check_inputs("cin_layer", x_prev_in, x0_in, weight, bias);
  const Activation act = parse_activation(activation);
  const c10::cuda::CUDAGuard guard(x0_in.device());
  const at::Tensor x0 = unit_last_stride(x0_in);
  const std::optional<at::Tensor> x_prev =
      x_prev_in.has_value() ? std::optional<at::Tensor>(unit_last_stride(*x_prev_in)) : std::nullopt;
  const at::Tensor w = effective_weight(weight, !x_prev.has_value());
  const int64_t rows = x0.size(0) * x0.size(1), hidden = weight.size(0), pairs = w.size(1);
  at::Tensor out = at::zeros({x0.size(0), x0.size(1), hidden}, x0.options());
  if (rows == 0) return out;
  const at::Tensor out_rows = out.view({rows, hidden});
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x0.scalar_type(), "cin_layer_cuda", [&] {
    const Layer<scalar_t> layer = make_layer<scalar_t>(x_prev, x0, pairs);
    const int64_t tile = tile_rows(pairs), factors = layer.symmetric ? layer.fields : layer.hidden_in;
    at::Tensor z = at::empty({std::min(tile, rows), pairs}, x0.options());
    for (int64_t t0 = 0; t0 < rows && pairs > 0 && hidden > 0; t0 += tile) {
      const int64_t n = std::min(tile, rows - t0);
      pair_products_kernel<scalar_t><<<blocks_for(n * factors), kThreads, 0, stream>>>(layer, t0, n,
                                                                                      z.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      at::Tensor y = out_rows.narrow(0, t0, n);
      at::mm_out(y, z.narrow(0, 0, n), w.t());
    }
    bias_activation_kernel<scalar_t><<<blocks_for(rows * hidden), kThreads, 0, stream>>>(
        out.mutable_data_ptr<scalar_t>(), bias ? bias->contiguous().const_data_ptr<scalar_t>() : nullptr,
        rows * hidden, hidden, act);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> cin_layer_backward_cuda(
    const at::Tensor& grad_out_in, const at::Tensor& out_in, const std::optional<at::Tensor>& x_prev_in,
    const at::Tensor& x0_in, const at::Tensor& weight, bool has_bias, c10::string_view activation) {
  check_inputs("cin_layer_backward", x_prev_in, x0_in, weight, std::nullopt);
  check_grad_out(grad_out_in, out_in, x0_in, weight);
  const Activation act = parse_activation(activation);
  const c10::cuda::CUDAGuard guard(x0_in.device());
  const at::Tensor x0 = unit_last_stride(x0_in), out = out_in.contiguous(), grad_out = unit_last_stride(grad_out_in);
  const std::optional<at::Tensor> x_prev =
      x_prev_in.has_value() ? std::optional<at::Tensor>(unit_last_stride(*x_prev_in)) : std::nullopt;
  const bool symmetric = !x_prev.has_value();
  const at::Tensor w = effective_weight(weight, symmetric);
  const int64_t rows = x0.size(0) * x0.size(1), hidden = weight.size(0), pairs = w.size(1);
  at::Tensor grad_x_prev = symmetric ? at::empty({0}, x0.options()) : at::zeros(x_prev->sizes(), x0.options());
  at::Tensor grad_x0 = at::zeros(x0.sizes(), x0.options());
  at::Tensor grad_w = at::zeros({hidden, pairs}, x0.options());
  at::Tensor dpre = at::empty({rows, hidden}, x0.options());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x0.scalar_type(), "cin_layer_backward_cuda", [&] {
    if (rows == 0) return;
    pre_activation_grad_kernel<scalar_t><<<blocks_for(rows * hidden), kThreads, 0, stream>>>(
        rows_of<scalar_t>(grad_out), grad_out.stride(2), out.const_data_ptr<scalar_t>(), rows * hidden, hidden, act,
        dpre.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const Layer<scalar_t> layer = make_layer<scalar_t>(x_prev, x0, pairs);
    const int64_t tile = tile_rows(pairs), factors = layer.symmetric ? layer.fields : layer.hidden_in;
    const int64_t width = layer.symmetric ? layer.fields : std::max(layer.fields, layer.hidden_in);
    at::Tensor z = at::empty({std::min(tile, rows), pairs}, x0.options());
    for (int64_t t0 = 0; t0 < rows && pairs > 0 && hidden > 0; t0 += tile) {
      const int64_t n = std::min(tile, rows - t0);
      const at::Tensor dpre_tile = dpre.narrow(0, t0, n);
      at::Tensor z_tile = z.narrow(0, 0, n);
      pair_products_kernel<scalar_t><<<blocks_for(n * factors), kThreads, 0, stream>>>(layer, t0, n,
                                                                                      z.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      grad_w.addmm_(dpre_tile.t(), z_tile);
      at::mm_out(z_tile, dpre_tile, w);
      input_grads_kernel<scalar_t><<<blocks_for(n * width), kThreads, 0, stream>>>(
          layer, t0, n, z.const_data_ptr<scalar_t>(), symmetric ? nullptr : grad_x_prev.mutable_data_ptr<scalar_t>(),
          grad_x0.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  at::Tensor grad_weight;
  if (symmetric) {  // each packed pair's gradient belongs to both w[h, i, j] and w[h, j, i]
    const auto [upper, lower] = triangle_positions(weight.size(2), weight.device());
    grad_weight = at::zeros({hidden, weight.size(1) * weight.size(2)}, weight.options());
    grad_weight.index_copy_(1, upper, grad_w).index_copy_(1, lower, grad_w);
    grad_weight = grad_weight.view(weight.sizes());
  } else {
    grad_weight = grad_w.view(weight.sizes());
  }
  return {grad_x_prev, grad_x0, grad_weight, has_bias ? dpre.sum(0) : at::empty({0}, x0.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CUDA, m) {
  m.impl("cin_layer", &cin_layer_cuda);
  m.impl("cin_layer_backward", &cin_layer_backward_cuda);
}

}  // namespace fastrec::cin
