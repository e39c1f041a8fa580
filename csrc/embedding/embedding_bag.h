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

#include <cstdint>
#include <vector>

#include "common/macros.h"

namespace fastrec::embedding {

enum class Pooling : int64_t { Sum = 0, Mean = 1 };
enum class Optimizer : int64_t { SGD = 0, Adagrad = 1, RowWiseAdagrad = 2, Adam = 3 };

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

// ---- per-row optimizer math (float32), applied to one row of `dim` elements ----
struct OptimizerParams {
  Optimizer kind;
  float lr, eps, beta1, beta2, weight_decay;
  int64_t step;  // Adam: the step number after this update (1 for the first)
};

// Row-wise Adagrad keeps one accumulator per row: the mean over the row of g^2 (FBGEMM's convention).
FASTREC_HOST_DEVICE float rowwise_adagrad_multiplier(float lr, float eps, float accumulator) {
  return lr / (sqrtf(accumulator) + eps);
}

}  // namespace fastrec::embedding
