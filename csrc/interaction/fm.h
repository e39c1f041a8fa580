// The FM interaction's math and argument checks, shared by the CPU kernel (cpu/fm_cpu.cpp) and the CUDA kernel
// (cuda/fm_cuda.cu): the CPU tests exercise the same per-element formulas the GPU runs.
//
// With x_fk = v_f * e_fk, s_k = sum_f x_fk and q_k = sum_f x_fk^2:
//   bi-interaction  y_k = 0.5 * (s_k^2 - q_k)           (reduce=False, NFM pooling)
//   FM term         y   = sum_k y_k                     (reduce=True)
//   dy_k/de_fk      = v_f * (s_k - x_fk)
//   dy_k/dv_f       = e_fk * (s_k - x_fk)
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <tuple>

#include "common/macros.h"

namespace fastrec::fm {

template <typename acc_t>
FASTREC_HOST_DEVICE acc_t pair_term(acc_t sum, acc_t sum_of_squares) {
  return acc_t(0.5) * (sum * sum - sum_of_squares);
}

// d y_k / d x_fk, scaled by the incoming gradient g_k.
template <typename acc_t>
FASTREC_HOST_DEVICE acc_t scaled_partial(acc_t grad_k, acc_t sum_k, acc_t x_fk) {
  return grad_k * (sum_k - x_fk);
}

// Argument checks of both ops; `op` names the op in messages. Runs before any data pointer is read.
inline void check_inputs(const char* op, const at::Tensor& emb, const std::optional<at::Tensor>& values) {
  TORCH_CHECK_VALUE(emb.dim() == 3, op, ": emb must be 3-D [batch, num_fields, embed_dim], got shape ", emb.sizes());
  TORCH_CHECK_TYPE(emb.scalar_type() == at::kFloat || emb.scalar_type() == at::kDouble, op,
                   ": emb must be float32 or float64, got ", emb.scalar_type());
  if (values.has_value()) {
    const at::Tensor& v = *values;
    TORCH_CHECK_VALUE(v.dim() == 2 && v.size(0) == emb.size(0) && v.size(1) == emb.size(1), op,
                      ": values must have shape [batch, num_fields] = ", emb.sizes().slice(0, 2), ", got ",
                      v.sizes());
    TORCH_CHECK_TYPE(v.scalar_type() == emb.scalar_type(), op, ": values dtype ", v.scalar_type(),
                     " must match emb dtype ", emb.scalar_type());
    TORCH_CHECK_VALUE(v.device() == emb.device(), op, ": values is on ", v.device(), " but emb is on ", emb.device());
  }
}

inline void check_grad_out(const at::Tensor& grad_out, const at::Tensor& emb, bool reduce) {
  const bool ok = reduce ? (grad_out.dim() == 1 && grad_out.size(0) == emb.size(0))
                         : (grad_out.dim() == 2 && grad_out.size(0) == emb.size(0) && grad_out.size(1) == emb.size(2));
  TORCH_CHECK_VALUE(ok, "fm_interaction_backward: grad_out must have shape ",
                    reduce ? "[batch]" : "[batch, embed_dim]", " for emb of shape ", emb.sizes(), ", got ",
                    grad_out.sizes());
  TORCH_CHECK_TYPE(grad_out.scalar_type() == emb.scalar_type(), "fm_interaction_backward: grad_out dtype ",
                   grad_out.scalar_type(), " must match emb dtype ", emb.scalar_type());
  TORCH_CHECK_VALUE(grad_out.device() == emb.device(), "fm_interaction_backward: grad_out is on ", grad_out.device(),
                    " but emb is on ", emb.device());
}

// The kernels read embedding rows as contiguous runs of embed_dim elements; other strides are taken as they are.
inline at::Tensor with_unit_last_stride(const at::Tensor& t) {
  return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous();
}

// [B] (reduce) or [B, K].
inline at::Tensor empty_output(const at::Tensor& emb, bool reduce) {
  return reduce ? at::empty({emb.size(0)}, emb.options()) : at::empty({emb.size(0), emb.size(2)}, emb.options());
}

// (grad_emb [B, F, K] contiguous, grad_values [B, F], or [0] when there are no values).
inline std::tuple<at::Tensor, at::Tensor> empty_grads(const at::Tensor& emb, const std::optional<at::Tensor>& values) {
  return {at::empty(emb.sizes(), emb.options()),
          values.has_value() ? at::empty(values->sizes(), emb.options()) : at::empty({0}, emb.options())};
}

}  // namespace fastrec::fm
