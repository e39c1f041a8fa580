// Table-batched embedding bag: layout, per-row math and argument checks shared by the CPU and CUDA kernels.
//
// All tables live in ONE contiguous weight buffer. `table_layout` is a list of 5 * T ints, five per table:
//   (element offset of the table in the buffer, embedding dim, number of rows, global row id of its first row,
//    pooling: 0 sum, 1 mean).
// Global row ids number the rows of all tables consecutively; row-wise optimizer state is indexed by them.
// `feature_tables` (F ints) maps each feature to its table (several features may share one table).
// Both are int lists rather than tensors: static under torch.compile, so output shapes are known when tracing.
// `indices` and `offsets` are feature-major, as in TorchRec's KeyedJaggedTensor: bag g = f * B + b holds
// indices[offsets[g] : offsets[g + 1]], offsets has F * B + 1 entries. The pooled output is float32 [B, sum_f D_f],
// feature f in columns [col_f, col_f + D_f).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/macros.h"

namespace fastrec::embedding {

enum class Pooling : int64_t { Sum = 0, Mean = 1 };
// Adam steps the touched rows only (lazy, as torch.optim.SparseAdam); DenseAdam also steps every other row of every
// table with a zero gradient, so that the result is torch.optim.Adam's on the dense weights (Keras, TF1 Adam).
enum class Optimizer : int64_t { SGD = 0, Adagrad = 1, RowWiseAdagrad = 2, Adam = 3, DenseAdam = 4 };

inline bool is_adam(Optimizer kind) { return kind == Optimizer::Adam || kind == Optimizer::DenseAdam; }

struct Table {
  int64_t weight_offset, dim, num_rows, row_start;
  bool mean;
};

struct Feature {
  int64_t table, weight_offset, dim, num_rows, row_start, column;
  bool mean;
};

// Host-side view of the layout tensors, with everything the kernels look up per feature precomputed.
struct Layout {
  std::vector<Table> tables;
  std::vector<Feature> features;
  int64_t batch = 0;         // B
  int64_t output_width = 0;  // sum_f D_f
  int64_t max_dim = 0;
  int64_t total_rows = 0;
};

inline void check_index_tensor(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.dim() == 1, op, ": ", name, " must be 1-D, got shape ", t.sizes());
  TORCH_CHECK_TYPE(t.scalar_type() == at::kLong || t.scalar_type() == at::kInt, op, ": ", name,
                   " must be int64 or int32, got ", t.scalar_type());
}

inline void check_weights(const char* op, const at::Tensor& weights) {
  TORCH_CHECK_TYPE(weights.scalar_type() == at::kFloat || weights.scalar_type() == at::kHalf ||
                       weights.scalar_type() == at::kBFloat16,
                   op, ": weights must be float32, float16 or bfloat16, got ", weights.scalar_type());
  TORCH_CHECK_VALUE(weights.is_contiguous(), op, ": weights must be contiguous");
}

// Reads and checks table_layout / feature_tables and the shapes of indices, offsets and
// per_sample_weights; tables must fit in `num_elements` weights (-1: not checked, for ops without the weights).
// The values of offsets and indices are checked by the kernels' first pass.
inline Layout make_layout(const char* op, c10::Device device, int64_t num_elements, c10::IntArrayRef table_layout,
                          c10::IntArrayRef feature_tables, const at::Tensor& indices, const at::Tensor& offsets,
                          const std::optional<at::Tensor>& per_sample_weights) {  TORCH_CHECK_VALUE(table_layout.size() % 5 == 0, op, ": table_layout must hold 5 ints per table, got ",
                    table_layout.size());
  check_index_tensor(op, "indices", indices);
  check_index_tensor(op, "offsets", offsets);
  TORCH_CHECK_TYPE(indices.scalar_type() == offsets.scalar_type(), op, ": indices (", indices.scalar_type(),
                   ") and offsets (", offsets.scalar_type(), ") must have the same dtype");
  TORCH_CHECK_VALUE(indices.device() == device && offsets.device() == device, op,
                    ": indices and offsets must be on the weights' device ", device);

  Layout layout;
  const int64_t* t = table_layout.data();
  for (int64_t i = 0; i < int64_t(table_layout.size()) / 5; ++i) {
    const int64_t* row = t + 5 * i;
    TORCH_CHECK_VALUE(row[4] == int64_t(Pooling::Sum) || row[4] == int64_t(Pooling::Mean), op, ": table ", i,
                      " has pooling ", row[4], "; it must be 0 (sum) or 1 (mean)");
    const Table table{row[0], row[1], row[2], row[3], row[4] == int64_t(Pooling::Mean)};
    TORCH_CHECK_VALUE(table.dim >= 0 && table.num_rows >= 0 && table.weight_offset >= 0 && table.row_start >= 0 &&
                          (num_elements < 0 || table.weight_offset + table.dim * table.num_rows <= num_elements),
                      op, ": table ", i, " (offset ", table.weight_offset, ", dim ", table.dim, ", rows ",
                      table.num_rows, ") does not fit in weights of ", num_elements, " elements");
    layout.tables.push_back(table);
    layout.total_rows = std::max(layout.total_rows, table.row_start + table.num_rows);
  }
  const int64_t* f = feature_tables.data();
  const int64_t num_features = int64_t(feature_tables.size());
  for (int64_t i = 0; i < num_features; ++i) {
    TORCH_CHECK_VALUE(f[i] >= 0 && f[i] < int64_t(layout.tables.size()), op, ": feature ", i, " maps to table ",
                      f[i], ", but there are ", layout.tables.size(), " tables");
    const Table& table = layout.tables[f[i]];
    layout.features.push_back(
        {f[i], table.weight_offset, table.dim, table.num_rows, table.row_start, layout.output_width, table.mean});
    layout.output_width += table.dim;
    layout.max_dim = std::max(layout.max_dim, table.dim);
  }
  TORCH_CHECK_VALUE(num_features > 0, op, ": at least one feature is required");
  TORCH_CHECK_VALUE(offsets.numel() >= 1 && (offsets.numel() - 1) % num_features == 0, op,
                    ": offsets must have num_features * batch_size + 1 = ", num_features, " * B + 1 entries, got ",
                    offsets.numel());
  layout.batch = (offsets.numel() - 1) / num_features;
  if (per_sample_weights.has_value()) {
    const at::Tensor& w = *per_sample_weights;
    TORCH_CHECK_VALUE(w.dim() == 1 && w.numel() == indices.numel(), op,
                      ": per_sample_weights must be 1-D with one weight per index (", indices.numel(), "), got shape ",
                      w.sizes());
    TORCH_CHECK_TYPE(w.scalar_type() == at::kFloat, op, ": per_sample_weights must be float32, got ", w.scalar_type());
    TORCH_CHECK_VALUE(w.device() == device, op, ": per_sample_weights must be on ", device);
  }
  return layout;
}

// ---- checks of the values of offsets and indices (host side; the CUDA kernels flag, the host then explains) ----
[[noreturn]] inline void throw_out_of_range(int64_t feature, const Feature& feat, int64_t position, int64_t id) {
  TORCH_CHECK_INDEX(false, "embedding_bag: id ", id, " at indices[", position, "] (feature ", feature, ", table ",
                    feat.table, ") is out of range [0, ", feat.num_rows, ")");
}

template <typename index_t>
void check_offsets(const index_t* offsets, int64_t num_bags, int64_t num_indices) {
  TORCH_CHECK_VALUE(offsets[0] == 0, "embedding_bag: offsets[0] must be 0, got ", int64_t(offsets[0]));
  TORCH_CHECK_VALUE(int64_t(offsets[num_bags]) == num_indices, "embedding_bag: offsets[-1] must equal len(indices) = ",
                    num_indices, ", got ", int64_t(offsets[num_bags]));
  int64_t bad = -1;
  for (int64_t g = 0; g < num_bags; ++g) {
    if (offsets[g + 1] < offsets[g]) {
      bad = g;
      break;
    }
  }
  TORCH_CHECK_VALUE(bad < 0, "embedding_bag: offsets must be non-decreasing, but offsets[", bad + 1, "] = ",
                    int64_t(offsets[bad + 1]), " < offsets[", bad, "] = ", int64_t(offsets[bad]));
}

// ---- per-element optimizer math (float32), shared by the CPU and CUDA kernels ----
struct OptimizerParams {
  Optimizer kind;
  float lr, eps, beta1, beta2, weight_decay;
  float adam_step_size;  // Adam: lr * sqrt(1 - beta2^t) / (1 - beta1^t) for this step t (bias corrections folded)

  OptimizerParams(Optimizer kind, double lr, double eps, double beta1, double beta2, double weight_decay, int64_t step)
      : kind(kind), lr(float(lr)), eps(float(eps)), beta1(float(beta1)), beta2(float(beta2)),
        weight_decay(float(weight_decay)),
        adam_step_size(float(lr * std::sqrt(1.0 - std::pow(beta2, double(step))) /
                             (1.0 - std::pow(beta1, double(step))))) {}
};

// The optimizer code of embedding_bag_backward_fused, checked.
inline Optimizer optimizer_kind(const char* op, int64_t optimizer) {
  TORCH_CHECK_VALUE(optimizer >= 0 && optimizer <= int64_t(Optimizer::DenseAdam), op,
                    ": optimizer must be 0 (SGD), 1 (Adagrad), 2 (row-wise Adagrad), 3 (Adam) or 4 (dense Adam), got ",
                    optimizer);
  return Optimizer(optimizer);
}

// Checks the optimizer state the fused step updates: state1 holds Adagrad's sums (one per weight), row-wise
// Adagrad's (one per row) or Adam's first moments; state2 Adam's second moments; unused states are empty.
inline void check_optimizer_state(const char* op, Optimizer kind, const at::Tensor& weights, const at::Tensor& state1,
                                  const at::Tensor& state2, int64_t total_rows, int64_t step) {
  auto check = [&](const at::Tensor& state, const char* name, int64_t expected) {
    TORCH_CHECK_VALUE(state.scalar_type() == at::kFloat && state.is_contiguous() && state.numel() == expected &&
                          state.device() == weights.device(),
                      op, ": ", name, " must be a contiguous float32 tensor of ", expected,
                      " elements on the weights' device, got ", state.scalar_type(), " of ", state.numel());
  };
  check(state1, "state1",
        kind == Optimizer::SGD ? 0 : kind == Optimizer::RowWiseAdagrad ? total_rows : weights.numel());
  check(state2, "state2", is_adam(kind) ? weights.numel() : 0);
  TORCH_CHECK_VALUE(!is_adam(kind) || step >= 1, op, ": Adam's step must be >= 1, got ", step);
}

// Each returns the updated weight from the weight w and the aggregated gradient g (weight decay added here).
FASTREC_HOST_DEVICE float sgd_update(const OptimizerParams& p, float w, float g) {
  return w - p.lr * (g + p.weight_decay * w);
}

FASTREC_HOST_DEVICE float adagrad_update(const OptimizerParams& p, float w, float g, float& sum_sq) {
  const float gd = g + p.weight_decay * w;
  sum_sq += gd * gd;
  return w - p.lr * gd / (sqrtf(sum_sq) + p.eps);
}

FASTREC_HOST_DEVICE float adam_update(const OptimizerParams& p, float w, float g, float& m, float& v) {
  const float gd = g + p.weight_decay * w;
  m = p.beta1 * m + (1.f - p.beta1) * gd;
  v = p.beta2 * v + (1.f - p.beta2) * gd * gd;
  return w - p.adam_step_size * m / (sqrtf(v) + p.eps);
}

// Row-wise Adagrad keeps one accumulator per row: the mean over the row of g^2 (FBGEMM's convention). The row's
// update is w - multiplier * (g + weight_decay * w), with the multiplier of the accumulator after this step.
FASTREC_HOST_DEVICE float rowwise_adagrad_multiplier(float lr, float eps, float accumulator) {
  return lr / (sqrtf(accumulator) + eps);
}

FASTREC_HOST_DEVICE float rowwise_adagrad_update(const OptimizerParams& p, float w, float g, float multiplier) {
  return w - multiplier * (g + p.weight_decay * w);
}

}  // namespace fastrec::embedding
