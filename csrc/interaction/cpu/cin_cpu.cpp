// CPU kernels of the CIN layer (interaction/cin.h): rows (b, d) in tiles, each thread building its tile's pair
// products in a private cache-sized buffer and multiplying it by the weights with torch's matrix product (the BLAS
// runs single-threaded inside the parallel region), on tensors that wrap the buffers.
// Neither pass stores the [B, K, H_in * F] outer-product tensor.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "interaction/cin.h"

namespace fastrec::cin {
namespace {

// A [rows, cols] tensor over a scratch or output buffer (no copy, not owned).
template <typename scalar_t>
at::Tensor matrix(scalar_t* data, int64_t rows, int64_t cols) {
  return at::from_blob(data, {rows, cols}, at::TensorOptions().dtype(c10::CppTypeToScalarType<scalar_t>::value));
}

// Rows of a [B, K, C] tensor whose last dim has unit stride.
template <typename scalar_t>
struct Rows {
  const scalar_t* data;
  int64_t stride_b, stride_d, dim;
  Rows(const at::Tensor& t)
      : data(t.const_data_ptr<scalar_t>()), stride_b(t.stride(0)), stride_d(t.stride(1)), dim(t.size(1)) {}
  const scalar_t* operator[](int64_t t) const { return data + (t / dim) * stride_b + (t % dim) * stride_d; }
};

at::Tensor unit_last_stride(const at::Tensor& t) { return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous(); }

template <typename scalar_t>
struct Layer {
  Rows<scalar_t> x_prev, x0;  // x_prev aliases x0 in the symmetric first layer
  bool symmetric;
  int64_t rows, fields, hidden_in, hidden_out, pairs;

  // Pair products of row t: z[i * F + j] = x_prev[i] x0[j], or the upper triangle i <= j of x0 x0^T.
  void pair_products(int64_t t, scalar_t* __restrict__ z) const {
    const scalar_t* __restrict__ a = x_prev[t];
    const scalar_t* __restrict__ e = x0[t];
    for (int64_t i = 0; i < (symmetric ? fields : hidden_in); ++i) {
      const scalar_t ai = a[i];
      const int64_t first = symmetric ? i : 0;
      scalar_t* __restrict__ zi = z + (symmetric ? symmetric_pair(i, i, fields) : i * fields) - first;
#pragma omp simd
      for (int64_t j = first; j < fields; ++j) zi[j] = ai * e[j];
    }
  }

  // Row t's input gradients from its dz: gx_prev[i] = sum_j dz[i, j] x0[j] (general layer only) and
  // gx0[j] = sum_i dz[i, j] x_prev[i] (in the symmetric layer, both factors are x0).
  void input_grads(int64_t t, const scalar_t* __restrict__ dz, scalar_t* __restrict__ gx_prev,
                   scalar_t* __restrict__ gx0) const {
    const scalar_t* __restrict__ a = x_prev[t];
    const scalar_t* __restrict__ e = x0[t];
    std::fill(gx0, gx0 + fields, scalar_t(0));
    for (int64_t i = 0; i < (symmetric ? fields : hidden_in); ++i) {
      const scalar_t ai = a[i];
      const int64_t first = symmetric ? i : 0;
      const scalar_t* __restrict__ dzi = dz + (symmetric ? symmetric_pair(i, i, fields) : i * fields) - first;
      scalar_t s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = first; j < fields; ++j) {
        s += dzi[j] * e[j];
        gx0[j] += dzi[j] * ai;
      }
      if (symmetric) {
        gx0[i] += s;
      } else {
        gx_prev[i] = s;
      }
    }
  }
};

// Rows per tile: the tile's pair products (and their gradient) take about 512 KB, half of a core's L2 here.
int64_t tile_rows(int64_t pairs, size_t element_size) {
  const int64_t rows = int64_t(512 * 1024 / element_size) / std::max<int64_t>(1, pairs);
  return std::clamp<int64_t>(rows / 8 * 8, 8, 512);
}

// Independent accumulators of the backward: one per thread, at most one per tile.
int64_t slots_of(int64_t num_tiles) { return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), num_tiles)); }

// The weights as a [H_out, pairs] matrix: the weight itself, or w[h, i, j] + w[h, j, i] on the triangle i <= j.
// Always a plain buffer (no autograd history): the matrix products run on torch's worker threads, outside the
// caller's autograd exclusion.
at::Tensor effective_weight(const at::Tensor& weight, bool symmetric) {
  if (!symmetric) {
    const at::Tensor w = weight.contiguous();
    return at::from_blob(const_cast<void*>(w.const_data_ptr()), {w.size(0), w.size(1) * w.size(2)},
                         [keep = w](void*) {}, w.options());
  }
  const int64_t hidden_out = weight.size(0), fields = weight.size(2);
  at::Tensor packed = at::empty({hidden_out, num_pairs(true, 0, fields)}, weight.options());
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "cin_pack_weight", [&] {
    const at::Tensor w = weight.contiguous();
    const scalar_t* src = w.const_data_ptr<scalar_t>();
    scalar_t* dst = packed.mutable_data_ptr<scalar_t>();
    for (int64_t h = 0; h < hidden_out; ++h) {
      const scalar_t* wh = src + h * fields * fields;
      for (int64_t i = 0; i < fields; ++i)
        for (int64_t j = i; j < fields; ++j)
          *dst++ = i == j ? wh[i * fields + i] : wh[i * fields + j] + wh[j * fields + i];
    }
  });
  return packed;
}

template <typename scalar_t>
void forward_kernel(const Layer<scalar_t>& layer, const at::Tensor& weight, const scalar_t* bias, Activation act,
                    scalar_t* out) {
  const int64_t R = layer.pairs, H = layer.hidden_out, tile = tile_rows(R, sizeof(scalar_t));
  const int64_t num_tiles = (layer.rows + tile - 1) / tile;
  at::parallel_for(0, num_tiles, 1, [&](int64_t first_tile, int64_t last_tile) {
    std::vector<scalar_t> z(tile * R);
    for (int64_t tile_index = first_tile; tile_index < last_tile; ++tile_index) {
      const int64_t t0 = tile_index * tile, n = std::min(tile, layer.rows - t0);
      scalar_t* y = out + t0 * H;
      if (R > 0 && H > 0) {
        for (int64_t t = 0; t < n; ++t) layer.pair_products(t0 + t, z.data() + t * R);
        at::Tensor y_tile = matrix(y, n, H);
        at::mm_out(y_tile, matrix(z.data(), n, R), weight.t());
      } else {
        std::fill(y, y + n * H, scalar_t(0));
      }
      for (int64_t t = 0; t < n; ++t) {
        scalar_t* __restrict__ yt = y + t * H;
        for (int64_t h = 0; h < H; ++h) yt[h] = activate(act, yt[h] + (bias ? bias[h] : scalar_t(0)));
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(const Layer<scalar_t>& layer, const at::Tensor& grad_out, const scalar_t* out,
                     const at::Tensor& weight, Activation act, scalar_t* grad_x_prev, scalar_t* grad_x0,
                     int64_t slots, scalar_t* grad_weight_per_slot, scalar_t* grad_bias_per_slot) {
  const int64_t R = layer.pairs, H = layer.hidden_out, tile = tile_rows(R, sizeof(scalar_t));
  const int64_t num_tiles = (layer.rows + tile - 1) / tile;
  const Rows<scalar_t> g(grad_out);
  const int64_t g_stride_h = grad_out.stride(2);
  // Slot s takes the tiles s, s + slots, ... and accumulates the weight gradient in its own buffer: the sum does not
  // depend on which thread ran which slot.
  at::parallel_for(0, slots, 1, [&](int64_t first_slot, int64_t last_slot) {
    std::vector<scalar_t> z(tile * R), dpre(tile * H);
    for (int64_t slot = first_slot; slot < last_slot; ++slot) {
      scalar_t* grad_weight = grad_weight_per_slot + slot * H * R;
      scalar_t* grad_bias = grad_bias_per_slot + slot * H;
      for (int64_t tile_index = slot; tile_index < num_tiles; tile_index += slots) {
        const int64_t t0 = tile_index * tile, n = std::min(tile, layer.rows - t0);
        for (int64_t t = 0; t < n; ++t) {
          const scalar_t* gt = g[t0 + t];
          const scalar_t* yt = out + (t0 + t) * H;
          scalar_t* __restrict__ dt = dpre.data() + t * H;
          for (int64_t h = 0; h < H; ++h) {
            dt[h] = gt[h * g_stride_h] * derivative_from_output(act, yt[h]);
            grad_bias[h] += dt[h];
          }
        }
        if (R > 0 && H > 0) {
          for (int64_t t = 0; t < n; ++t) layer.pair_products(t0 + t, z.data() + t * R);
          // dW += dpre^T z, then dz = dpre W into the same buffer
          const at::Tensor z_tile = matrix(z.data(), n, R), dpre_tile = matrix(dpre.data(), n, H);
          matrix(grad_weight, H, R).addmm_(dpre_tile.t(), z_tile);
          at::Tensor dz_tile = z_tile;
          at::mm_out(dz_tile, dpre_tile, weight);
        } else {
          std::fill(z.begin(), z.end(), scalar_t(0));
        }
        for (int64_t t = 0; t < n; ++t) {
          layer.input_grads(t0 + t, z.data() + t * R,
                            grad_x_prev ? grad_x_prev + (t0 + t) * layer.hidden_in : nullptr,
                            grad_x0 + (t0 + t) * layer.fields);
        }
      }
    }
  });
}

template <typename scalar_t>
Layer<scalar_t> make_layer(const std::optional<at::Tensor>& x_prev, const at::Tensor& x0, const at::Tensor& weight) {
  const bool symmetric = !x_prev.has_value();
  const int64_t hidden_in = symmetric ? x0.size(2) : x_prev->size(2);
  return {Rows<scalar_t>(symmetric ? x0 : *x_prev), Rows<scalar_t>(x0), symmetric, x0.size(0) * x0.size(1),
          x0.size(2), hidden_in, weight.size(0), num_pairs(symmetric, hidden_in, x0.size(2))};
}

at::Tensor cin_layer_cpu(const std::optional<at::Tensor>& x_prev_in, const at::Tensor& x0_in, const at::Tensor& weight,
                         const std::optional<at::Tensor>& bias_in, c10::string_view activation) {
  check_inputs("cin_layer", x_prev_in, x0_in, weight, bias_in);
  const Activation act = parse_activation(activation);
  const at::Tensor x0 = unit_last_stride(x0_in);
  const std::optional<at::Tensor> x_prev =
      x_prev_in.has_value() ? std::optional<at::Tensor>(unit_last_stride(*x_prev_in)) : std::nullopt;
  const at::Tensor w = effective_weight(weight, !x_prev.has_value());
  const std::optional<at::Tensor> bias =
      bias_in.has_value() ? std::optional<at::Tensor>(bias_in->contiguous()) : std::nullopt;
  at::Tensor out = at::empty({x0.size(0), x0.size(1), weight.size(0)}, x0.options());
  AT_DISPATCH_FLOATING_TYPES(x0.scalar_type(), "cin_layer_cpu", [&] {
    forward_kernel<scalar_t>(make_layer<scalar_t>(x_prev, x0, weight), w,
                             bias ? bias->const_data_ptr<scalar_t>() : nullptr, act, out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

// (grad_x_prev [B, K, H_in] or empty when x_prev is None, grad_x0 [B, K, F], grad_weight, grad_bias or empty).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> cin_layer_backward_cpu(
    const at::Tensor& grad_out_in, const at::Tensor& out_in, const std::optional<at::Tensor>& x_prev_in,
    const at::Tensor& x0_in, const at::Tensor& weight, bool has_bias, c10::string_view activation) {
  check_inputs("cin_layer_backward", x_prev_in, x0_in, weight, std::nullopt);
  check_grad_out(grad_out_in, out_in, x0_in, weight);
  const Activation act = parse_activation(activation);
  const at::Tensor x0 = unit_last_stride(x0_in), out = out_in.contiguous(), grad_out = unit_last_stride(grad_out_in);
  const std::optional<at::Tensor> x_prev =
      x_prev_in.has_value() ? std::optional<at::Tensor>(unit_last_stride(*x_prev_in)) : std::nullopt;
  const bool symmetric = !x_prev.has_value();
  const at::Tensor w = effective_weight(weight, symmetric);
  const int64_t hidden_out = weight.size(0), rows = x0.size(0) * x0.size(1);
  const int64_t tile = tile_rows(w.size(1), x0.element_size()), slots = slots_of((rows + tile - 1) / tile);
  at::Tensor grad_x_prev = symmetric ? at::empty({0}, x0.options()) : at::empty(x_prev->sizes(), x0.options());
  at::Tensor grad_x0 = at::empty(x0.sizes(), x0.options());
  at::Tensor grad_w = at::zeros({slots, hidden_out, w.size(1)}, x0.options());
  at::Tensor grad_b = at::zeros({slots, hidden_out}, x0.options());
  AT_DISPATCH_FLOATING_TYPES(x0.scalar_type(), "cin_layer_backward_cpu", [&] {
    backward_kernel<scalar_t>(make_layer<scalar_t>(x_prev, x0, weight), grad_out, out.const_data_ptr<scalar_t>(),
                              w, act,
                              symmetric ? nullptr : grad_x_prev.mutable_data_ptr<scalar_t>(),
                              grad_x0.mutable_data_ptr<scalar_t>(), slots, grad_w.mutable_data_ptr<scalar_t>(),
                              grad_b.mutable_data_ptr<scalar_t>());
  });
  at::Tensor grad_weight = grad_w.sum(0);
  if (!symmetric) {
    grad_weight = grad_weight.view(weight.sizes());
  } else {  // each packed pair's gradient belongs to both w[h, i, j] and w[h, j, i]
    const int64_t fields = x0.size(2);
    at::Tensor full = at::empty(weight.sizes(), weight.options());
    AT_DISPATCH_FLOATING_TYPES(x0.scalar_type(), "cin_unpack_grad", [&] {
      const scalar_t* packed = grad_weight.const_data_ptr<scalar_t>();
      scalar_t* dst = full.mutable_data_ptr<scalar_t>();
      for (int64_t h = 0; h < hidden_out; ++h, packed += w.size(1))
        for (int64_t i = 0; i < fields; ++i)
          for (int64_t j = i; j < fields; ++j)
            dst[(h * fields + i) * fields + j] = dst[(h * fields + j) * fields + i] = packed[symmetric_pair(i, j, fields)];
    });
    grad_weight = full;
  }
  return {grad_x_prev, grad_x0, grad_weight, has_bias ? grad_b.sum(0) : at::empty({0}, x0.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CPU, m) {
  m.impl("cin_layer", &cin_layer_cpu);
  m.impl("cin_layer_backward", &cin_layer_backward_cpu);
}

}  // namespace fastrec::cin
