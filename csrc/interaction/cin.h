// One CIN layer (xDeepFM) without the outer-product tensor: argument checks, activations and the per-row pair
// products, shared by the CPU kernel (cpu/cin_cpu.cpp) and the CUDA kernel (cuda/cin_cuda.cu).
//
// Layout, embedding-dim-major: x_prev [B, K, H_in], x0 [B, K, F], out [B, K, H_out], weight [H_out, H_in, F].
// Each (b, d) is one row t; with the row's pair products z_t[i * F + j] = x_prev[t, i] * x0[t, j] (R = H_in * F),
//   pre[t, h] = sum_r weight[h, r] z_t[r] + bias[h],   out[t, h] = act(pre[t, h]),
// so a tile of T rows is one [T, R] x [R, H_out] matrix product over a [T, R] block of z that lives only in cache.
// The first layer (x_prev = x0, passed as None) is symmetric, z[i, j] = z[j, i]: it keeps the F (F + 1) / 2 pairs
// i <= j with weights w[h, i, j] + w[h, j, i] (i < j), halving that layer's products.
// Backward, per tile: dpre = grad_out * act'(out) (from the output), dW += dpre^T z, dz = dpre W, and
//   dx_prev[t, i] = sum_j dz[t, i, j] x0[t, j],   dx0[t, j] = sum_i dz[t, i, j] x_prev[t, i].
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <array>
#include <cmath>
#include <optional>
#include <string_view>

#include "common/macros.h"

namespace fastrec::cin {

enum class Activation : int { kIdentity = 0, kRelu = 1, kSigmoid = 2, kTanh = 3 };

inline Activation parse_activation(std::string_view name) {
  if (name == "relu") return Activation::kRelu;
  if (name == "identity" || name == "linear") return Activation::kIdentity;
  if (name == "sigmoid") return Activation::kSigmoid;
  if (name == "tanh") return Activation::kTanh;
  TORCH_CHECK_VALUE(false, "cin_layer: activation must be one of relu, identity, linear, sigmoid, tanh, got '", name,
                    "'");
}

template <typename acc_t>
FASTREC_HOST_DEVICE acc_t activate(Activation act, acc_t pre) {
  switch (act) {
    case Activation::kRelu: return pre > acc_t(0) ? pre : acc_t(0);
    case Activation::kSigmoid: return acc_t(1) / (acc_t(1) + std::exp(-pre));
    case Activation::kTanh: return std::tanh(pre);
    default: return pre;
  }
}

// d act / d pre, from the activation's output y.
template <typename acc_t>
FASTREC_HOST_DEVICE acc_t derivative_from_output(Activation act, acc_t y) {
  switch (act) {
    case Activation::kRelu: return y > acc_t(0) ? acc_t(1) : acc_t(0);
    case Activation::kSigmoid: return y * (acc_t(1) - y);
    case Activation::kTanh: return acc_t(1) - y * y;
    default: return acc_t(1);
  }
}

// Number of pair products per row: H_in * F, or F (F + 1) / 2 for the symmetric first layer.
inline int64_t num_pairs(bool symmetric, int64_t hidden_in, int64_t fields) {
  return symmetric ? fields * (fields + 1) / 2 : hidden_in * fields;
}

// Column of pair (i, j), i <= j, in the symmetric layout (rows i = 0, 1, ... of the upper triangle, j from i).
FASTREC_HOST_DEVICE int64_t symmetric_pair(int64_t i, int64_t j, int64_t fields) {
  return i * fields - i * (i - 1) / 2 + (j - i);
}

inline void check_same(const char* op, const char* name, const at::Tensor& t, const at::Tensor& like) {
  TORCH_CHECK_TYPE(t.scalar_type() == like.scalar_type(), op, ": ", name, " dtype ", t.scalar_type(), " must match ",
                   like.scalar_type());
  TORCH_CHECK_VALUE(t.device() == like.device(), op, ": ", name, " is on ", t.device(), " but x0 is on ",
                    like.device());
}

// Checks of both ops (x_prev None: the first layer, x_prev = x0). Runs before any data pointer is read.
inline void check_inputs(const char* op, const std::optional<at::Tensor>& x_prev, const at::Tensor& x0,
                         const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  TORCH_CHECK_VALUE(x0.dim() == 3, op, ": x0 must be 3-D [batch, embed_dim, num_fields], got shape ", x0.sizes());
  TORCH_CHECK_TYPE(x0.scalar_type() == at::kFloat || x0.scalar_type() == at::kDouble, op,
                   ": x0 must be float32 or float64, got ", x0.scalar_type());
  const int64_t hidden_in = x_prev.has_value() ? x_prev->size(-1) : x0.size(2);
  if (x_prev.has_value()) {
    TORCH_CHECK_VALUE(x_prev->dim() == 3 && x_prev->size(0) == x0.size(0) && x_prev->size(1) == x0.size(1), op,
                      ": x_prev must be [batch, embed_dim, hidden_in] with [batch, embed_dim] = ",
                      x0.sizes().slice(0, 2), ", got ", x_prev->sizes());
    check_same(op, "x_prev", *x_prev, x0);
  }
  TORCH_CHECK_VALUE(weight.dim() == 3 && weight.size(1) == hidden_in && weight.size(2) == x0.size(2), op,
                    ": weight must have shape [hidden_out, hidden_in=", hidden_in, ", num_fields=", x0.size(2),
                    "], got ", weight.sizes());
  check_same(op, "weight", weight, x0);
  if (bias.has_value()) {
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == weight.size(0), op,
                      ": bias must have shape [hidden_out=", weight.size(0), "], got ", bias->sizes());
    check_same(op, "bias", *bias, x0);
  }
}

inline void check_grad_out(const at::Tensor& grad_out, const at::Tensor& out, const at::Tensor& x0,
                           const at::Tensor& weight) {
  const std::array<int64_t, 3> shape{x0.size(0), x0.size(1), weight.size(0)};
  TORCH_CHECK_VALUE(grad_out.sizes() == at::IntArrayRef(shape) && out.sizes() == at::IntArrayRef(shape),
                    "cin_layer_backward: grad_out and out must have shape [batch, embed_dim, hidden_out] = ",
                    at::IntArrayRef(shape), ", got ", grad_out.sizes(), " and ", out.sizes());
  check_same("cin_layer_backward", "grad_out", grad_out, x0);
  check_same("cin_layer_backward", "out", out, x0);
}

}  // namespace fastrec::cin
