// CUDA kernels of the table-batched embedding bag (layout in embedding/embedding_bag.h).
//
// Forward: one warp per bag, lanes over the embedding dim, float32 accumulation.
// Backward: every occurrence becomes one 64-bit key (global row << 32 | its bag, or its position with per-sample
// weights); sorting the keys groups the occurrences of each touched row into one segment; warps sum each segment's
// gradient (duplicates aggregated once; long segments split over several warps, see accumulate_kernel), which is
// either the row-sparse gradient or is applied by the fused optimizer to each touched row in place, one warp a row. The per-element optimizer math is
// the CPU kernels' (embedding_bag.h). Bad ids or offsets are flagged by the kernels; the host then raises with the
// same message as the CPU kernels.
#include <ATen/Dispatch.h>
#include <ATen/ops/bitwise_right_shift.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/repeat_interleave.h>
#include <ATen/ops/searchsorted.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/unique_consecutive.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <vector>

#include "embedding/embedding_bag.h"

namespace fastrec::embedding {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

struct DeviceFeature {
  int64_t weight_offset, dim, num_rows, row_start, column, mean;
};

struct DeviceTable {
  int64_t weight_offset, dim, row_start;
};

// A small host array of int64 fields copied to the device (the per-feature or per-table constants).
template <typename T>
at::Tensor to_device(const std::vector<T>& items, const at::Tensor& like) {
  static_assert(sizeof(T) % sizeof(int64_t) == 0);
  const int64_t n = int64_t(items.size() * sizeof(T) / sizeof(int64_t));
  at::Tensor host = at::empty({n}, like.options().dtype(at::kLong).device(at::kCPU));
  std::memcpy(host.mutable_data_ptr<int64_t>(), items.data(), items.size() * sizeof(T));
  return host.to(like.device());
}

// error[0]: the first position whose id is out of range; error[1]: 0 when the offsets are malformed (then the host
// re-checks them to explain). Both start at -1 (all bits set: "none" for the unsigned atomicMin).
struct ErrorFlags {
  at::Tensor flags;
  explicit ErrorFlags(const at::Tensor& like) : flags(at::full({2}, -1, like.options().dtype(at::kLong))) {}
  unsigned long long* data() { return reinterpret_cast<unsigned long long*>(flags.mutable_data_ptr<int64_t>()); }
};

// The bag's [start, end) within indices, or false (and the flag set) when its offsets are malformed.
template <typename index_t>
__device__ bool bag_bounds(const index_t* offsets, int64_t g, int64_t num_bags, int64_t num_indices, int64_t& start,
                           int64_t& end, unsigned long long* error) {
  start = offsets[g];
  end = offsets[g + 1];
  const bool bad = end < start || start < 0 || end > num_indices || (g == 0 && start != 0) ||
                   (g == num_bags - 1 && end != num_indices);
  if (bad) error[1] = 0;
  return !bad;
}

// Raises (with the CPU kernels' messages) when a kernel flagged bad input. Synchronizes with the stream.
template <typename index_t>
void raise_on_error(const ErrorFlags& error, const Layout& layout, const at::Tensor& indices,
                    const at::Tensor& offsets) {
  const at::Tensor host = error.flags.cpu();
  const int64_t bad_position = host.const_data_ptr<int64_t>()[0], offsets_ok = host.const_data_ptr<int64_t>()[1];
  if (offsets_ok != -1) {
    const at::Tensor cpu_offsets = offsets.cpu();
    check_offsets(cpu_offsets.const_data_ptr<index_t>(), offsets.numel() - 1, indices.numel());
    TORCH_CHECK_VALUE(false, "embedding_bag: offsets are malformed");  // not reached: check_offsets raised
  }
  if (bad_position != -1) {
    const at::Tensor cpu_offsets = offsets.cpu();
    const index_t* o = cpu_offsets.const_data_ptr<index_t>();
    const int64_t bag = int64_t(std::upper_bound(o, o + offsets.numel(), index_t(bad_position)) - o) - 1;
    const int64_t feature = bag / layout.batch;
    const at::Tensor cpu_indices = indices.cpu();
    throw_out_of_range(feature, layout.features[feature], bad_position,
                       int64_t(cpu_indices.const_data_ptr<index_t>()[bad_position]));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------------------------
template <typename weight_t, typename index_t>
__global__ void forward_kernel(const weight_t* __restrict__ weights, const DeviceFeature* __restrict__ features,
                               const index_t* __restrict__ indices, const index_t* __restrict__ offsets,
                               const float* __restrict__ per_sample_weights, int64_t batch, int64_t num_bags,
                               int64_t num_indices, int64_t output_width, float* __restrict__ out,
                               unsigned long long* error) {
  const int64_t g = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (g >= num_bags) return;
  const int64_t b = g % batch;
  const DeviceFeature feat = features[g / batch];
  float* y = out + b * output_width + feat.column;
  int64_t start, end;
  if (!bag_bounds(offsets, g, num_bags, num_indices, start, end, error)) {
    for (int64_t k = lane; k < feat.dim; k += kWarp) y[k] = 0.f;
    return;
  }
  const weight_t* table = weights + feat.weight_offset;
  const float scale = (feat.mean && end > start) ? 1.f / float(end - start) : 1.f;
  for (int64_t k = lane; k < feat.dim; k += kWarp) {
    float acc = 0.f;
    for (int64_t i = start; i < end; ++i) {
      const int64_t id = indices[i];
      if (id < 0 || id >= feat.num_rows) {
        atomicMin(error, static_cast<unsigned long long>(i));
        continue;  // never read out of bounds; the host raises after the kernel
      }
      const float w = per_sample_weights ? per_sample_weights[i] : 1.f;
      acc += w * static_cast<float>(table[id * feat.dim + k]);
    }
    y[k] = acc * scale;
  }
}

std::vector<DeviceFeature> device_features(const Layout& layout) {
  std::vector<DeviceFeature> features;
  for (const Feature& f : layout.features) {
    features.push_back({f.weight_offset, f.dim, f.num_rows, f.row_start, f.column, int64_t(f.mean)});
  }
  return features;
}

unsigned int blocks_for(int64_t warps) {
  return static_cast<unsigned int>((warps + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

at::Tensor embedding_bag_forward_cuda(const at::Tensor& weights, c10::IntArrayRef table_layout,
                                      c10::IntArrayRef feature_tables, const at::Tensor& indices_in,
                                      const at::Tensor& offsets_in,
                                      const std::optional<at::Tensor>& per_sample_weights) {
  static constexpr const char* op = "embedding_bag_forward";
  check_weights(op, weights);
  const Layout layout = make_layout(op, weights.device(), weights.numel(), table_layout, feature_tables, indices_in,
                                    offsets_in, per_sample_weights);
  const c10::cuda::CUDAGuard guard(weights.device());
  const at::Tensor indices = indices_in.contiguous(), offsets = offsets_in.contiguous();
  at::Tensor out = at::empty({layout.batch, layout.output_width}, weights.options().dtype(at::kFloat));
  const int64_t num_bags = int64_t(layout.features.size()) * layout.batch;
  if (num_bags == 0) return out;
  const at::Tensor features = to_device(device_features(layout), weights);
  ErrorFlags error(indices);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weights.scalar_type(), op, [&] {
    using weight_t = scalar_t;
    AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), op, [&] {
      forward_kernel<weight_t, index_t><<<blocks_for(num_bags), kWarp * kWarpsPerBlock, 0,
                                          c10::cuda::getCurrentCUDAStream()>>>(
          weights.const_data_ptr<weight_t>(), reinterpret_cast<const DeviceFeature*>(features.const_data_ptr<int64_t>()),
          indices.const_data_ptr<index_t>(), offsets.const_data_ptr<index_t>(),
          per_sample_weights.has_value() ? per_sample_weights->const_data_ptr<float>() : nullptr, layout.batch, num_bags,
          indices.numel(), layout.output_width, out.mutable_data_ptr<float>(), error.data());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      raise_on_error<index_t>(error, layout, indices, offsets);  // bad input must raise, not return garbage
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------------------------
// Gradient with respect to per_sample_weights: one warp per bag, the lanes split each row's dot product.
template <typename weight_t, typename index_t>
__global__ void per_sample_weights_kernel(const weight_t* __restrict__ weights,
                                          const DeviceFeature* __restrict__ features,
                                          const index_t* __restrict__ indices, const index_t* __restrict__ offsets,
                                          const float* __restrict__ grad_output, int64_t batch, int64_t num_bags,
                                          int64_t num_indices, int64_t output_width, float* __restrict__ out,
                                          unsigned long long* error) {
  const int64_t g = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (g >= num_bags) return;
  const DeviceFeature feat = features[g / batch];
  int64_t start, end;
  if (!bag_bounds(offsets, g, num_bags, num_indices, start, end, error)) return;
  const float* y = grad_output + (g % batch) * output_width + feat.column;
  const float scale = (feat.mean && end > start) ? 1.f / float(end - start) : 1.f;
  for (int64_t i = start; i < end; ++i) {
    const int64_t id = indices[i];
    if (id < 0 || id >= feat.num_rows) {
      if (lane == 0) atomicMin(error, static_cast<unsigned long long>(i));
      continue;
    }
    const weight_t* row = weights + feat.weight_offset + id * feat.dim;
    float dot = 0.f;
    for (int64_t k = lane; k < feat.dim; k += kWarp) dot += y[k] * static_cast<float>(row[k]);
    for (int offset = kWarp / 2; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    if (lane == 0) out[i] = dot * scale;
  }
}

// One warp per bag: checks its ids and writes one key per occurrence, and the bag's gradient offset and scale.
template <typename index_t>
__global__ void key_kernel(const DeviceFeature* __restrict__ features, const index_t* __restrict__ indices,
                           const index_t* __restrict__ offsets, bool weighted, int64_t batch, int64_t num_bags,
                           int64_t num_indices, int64_t output_width, int64_t* __restrict__ keys,
                           int32_t* __restrict__ bag_of_position, int64_t* __restrict__ bag_grad_offset,
                           float* __restrict__ bag_scale, unsigned long long* error) {
  const int64_t g = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (g >= num_bags) return;
  const DeviceFeature feat = features[g / batch];
  int64_t start, end;
  if (!bag_bounds(offsets, g, num_bags, num_indices, start, end, error)) return;
  if (lane == 0) {
    bag_grad_offset[g] = (g % batch) * output_width + feat.column;
    bag_scale[g] = (feat.mean && end > start) ? 1.f / float(end - start) : 1.f;
  }
  for (int64_t i = start + lane; i < end; i += kWarp) {
    int64_t id = indices[i];
    if (id < 0 || id >= feat.num_rows) {
      atomicMin(error, static_cast<unsigned long long>(i));
      id = 0;  // a valid key; the host raises before the keys are used
    }
    if (weighted) bag_of_position[i] = int32_t(g);
    keys[i] = ((feat.row_start + id) << 32) | (weighted ? i : g);
  }
}

// The touched rows: segment u holds the sorted keys [end[u - 1], end[u]) of global row row[u].
struct Segments {
  at::Tensor keys, rows, ends;
  at::Tensor bag_of_position, bag_grad_offset, bag_scale;
  int64_t count() const { return rows.numel(); }
};

template <typename index_t>
Segments sort_occurrences(const Layout& layout, const at::Tensor& indices, const at::Tensor& offsets,
                          bool weighted) {
  const int64_t num_bags = int64_t(layout.features.size()) * layout.batch, n = indices.numel();
  TORCH_CHECK_VALUE(num_bags < INT32_MAX && n < INT32_MAX && layout.total_rows < INT32_MAX,
                    "embedding_bag: the CUDA backward supports fewer than 2^31 bags, ids per batch and rows, got ",
                    num_bags, " bags, ", n, " ids, ", layout.total_rows, " rows");
  Segments s;
  const auto long_options = indices.options().dtype(at::kLong);
  at::Tensor keys = at::empty({n}, long_options);
  s.bag_of_position = at::empty({weighted ? n : 0}, indices.options().dtype(at::kInt));
  s.bag_grad_offset = at::empty({num_bags}, long_options);
  s.bag_scale = at::empty({num_bags}, indices.options().dtype(at::kFloat));
  if (num_bags > 0) {
    const at::Tensor features = to_device(device_features(layout), indices);
    ErrorFlags error(indices);
    key_kernel<index_t><<<blocks_for(num_bags), kWarp * kWarpsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const DeviceFeature*>(features.const_data_ptr<int64_t>()), indices.const_data_ptr<index_t>(),
        offsets.const_data_ptr<index_t>(), weighted, layout.batch, num_bags, n, layout.output_width,
        keys.mutable_data_ptr<int64_t>(), weighted ? s.bag_of_position.mutable_data_ptr<int32_t>() : nullptr,
        s.bag_grad_offset.mutable_data_ptr<int64_t>(), s.bag_scale.mutable_data_ptr<float>(), error.data());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    raise_on_error<index_t>(error, layout, indices, offsets);
  }
  s.keys = std::get<0>(at::sort(keys));
  at::Tensor counts;
  std::tie(s.rows, std::ignore, counts) =
      at::unique_consecutive(at::bitwise_right_shift(s.keys, 32), /*return_inverse=*/false, /*return_counts=*/true);
  s.ends = counts.cumsum(0);
  return s;
}

struct RowMath {
  const DeviceTable* tables;
  int64_t num_tables;

  // The table holding global row `row`: tables are numbered in row order (binary search over row_start).
  __device__ DeviceTable table_of(int64_t row) const {
    int64_t lo = 0, hi = num_tables - 1;
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) / 2;
      if (tables[mid].row_start <= row) lo = mid; else hi = mid - 1;
    }
    return tables[lo];
  }
};

// The aggregated gradients of all segments, flat: segment u's dim floats start at offset[u]. A segment is split
// into chunks of at most kChunk occurrences, one warp each, so that the few rows of tiny tables (which a whole
// batch hits) spread over many warps; chunks add their partial sums atomically.
constexpr int64_t kChunk = 32;

struct SegmentGradients {
  at::Tensor values, offset, dim;
};

struct GradientSource {
  const int64_t* keys;
  const int32_t* bag_of_position;  // with per-sample weights
  const float* per_sample_weights;
  const int64_t* bag_grad_offset;
  const float* bag_scale;
  const float* grad_output;
};

__global__ void accumulate_kernel(GradientSource src, const int64_t* __restrict__ segment_ends,
                                  const int64_t* __restrict__ chunk_segment, const int64_t* __restrict__ first_chunk,
                                  const int64_t* __restrict__ value_offset, const int64_t* __restrict__ segment_dim,
                                  int64_t num_chunks, float* __restrict__ values) {
  const int64_t c = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (c >= num_chunks) return;
  const int64_t u = chunk_segment[c];
  const int64_t begin = (u > 0 ? segment_ends[u - 1] : 0) + (c - first_chunk[u]) * kChunk;
  const int64_t end = min(begin + kChunk, segment_ends[u]);
  const int64_t dim = segment_dim[u];
  float* out = values + value_offset[u];
  const bool whole_segment = begin == (u > 0 ? segment_ends[u - 1] : 0) && end == segment_ends[u];
  for (int64_t k = lane; k < dim; k += kWarp) {
    float acc = 0.f;
    for (int64_t j = begin; j < end; ++j) {
      const int64_t source = src.keys[j] & 0xffffffffLL;
      const int64_t bag = src.per_sample_weights ? src.bag_of_position[source] : source;
      const float scale = src.bag_scale[bag] * (src.per_sample_weights ? src.per_sample_weights[source] : 1.f);
      acc += scale * src.grad_output[src.bag_grad_offset[bag] + k];
    }
    if (whole_segment) out[k] = acc; else atomicAdd(out + k, acc);
  }
}

template <typename weight_t>
__global__ void fused_update_kernel(RowMath math, const int64_t* __restrict__ rows, const float* __restrict__ grads,
                                    const int64_t* __restrict__ value_offset, int64_t num_segments, OptimizerParams p,
                                    weight_t* __restrict__ weights, float* __restrict__ state1,
                                    float* __restrict__ state2) {
  const int64_t u = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (u >= num_segments) return;
  const int64_t row = rows[u];
  const DeviceTable table = math.table_of(row);
  const int64_t dim = table.dim;
  const float* g = grads + value_offset[u];
  const int64_t element = table.weight_offset + (row - table.row_start) * dim;
  weight_t* w = weights + element;
  switch (p.kind) {
    case Optimizer::SGD:
      for (int64_t k = lane; k < dim; k += kWarp) w[k] = weight_t(sgd_update(p, float(w[k]), g[k]));
      break;
    case Optimizer::Adagrad:
      for (int64_t k = lane; k < dim; k += kWarp) {
        w[k] = weight_t(adagrad_update(p, float(w[k]), g[k], state1[element + k]));
      }
      break;
    case Optimizer::RowWiseAdagrad: {
      float sum_sq = 0.f;
      for (int64_t k = lane; k < dim; k += kWarp) {
        const float gk = g[k] + p.weight_decay * float(w[k]);
        sum_sq += gk * gk;
      }
      for (int offset = kWarp / 2; offset > 0; offset /= 2) sum_sq += __shfl_xor_sync(0xffffffffu, sum_sq, offset);
      const float accumulator = state1[row] + (dim > 0 ? sum_sq / float(dim) : 0.f);
      __syncwarp();  // every lane has read the old accumulator
      if (lane == 0) state1[row] = accumulator;
      const float multiplier = rowwise_adagrad_multiplier(p.lr, p.eps, accumulator);
      for (int64_t k = lane; k < dim; k += kWarp) {
        w[k] = weight_t(rowwise_adagrad_update(p, float(w[k]), g[k], multiplier));
      }
      break;
    }
    case Optimizer::Adam:
    case Optimizer::DenseAdam:
      for (int64_t k = lane; k < dim; k += kWarp) {
        w[k] = weight_t(adam_update(p, float(w[k]), g[k], state1[element + k], state2[element + k]));
      }
      break;
  }
}

// DenseAdam's second pass, one warp per global row: rows flagged in `untouched` (those of a table that the batch
// did not touch) take Adam's step with a zero gradient, as under torch.optim.Adam on the dense weights.
template <typename weight_t>
__global__ void untouched_adam_kernel(RowMath math, const bool* __restrict__ untouched, int64_t total_rows,
                                      OptimizerParams p, weight_t* __restrict__ weights, float* __restrict__ m,
                                      float* __restrict__ v) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= total_rows || !untouched[row]) return;
  const DeviceTable table = math.table_of(row);
  const int64_t element = table.weight_offset + (row - table.row_start) * table.dim;
  for (int64_t k = lane; k < table.dim; k += kWarp) {
    weights[element + k] = weight_t(adam_update(p, float(weights[element + k]), 0.f, m[element + k], v[element + k]));
  }
}

struct BackwardInputs {
  Layout layout;
  at::Tensor indices, offsets, grad, tables;
  const float* per_sample_weights = nullptr;
};

BackwardInputs prepare_backward(const char* op, const at::Tensor& grad_output, int64_t num_elements,
                                c10::IntArrayRef table_layout, c10::IntArrayRef feature_tables,
                                const at::Tensor& indices, const at::Tensor& offsets,
                                const std::optional<at::Tensor>& per_sample_weights) {
  BackwardInputs in{make_layout(op, indices.device(), num_elements, table_layout, feature_tables, indices, offsets,
                                per_sample_weights),
                    indices.contiguous(), offsets.contiguous(), grad_output.contiguous(), at::Tensor()};
  TORCH_CHECK_VALUE(grad_output.dim() == 2 && grad_output.size(0) == in.layout.batch &&
                        grad_output.size(1) == in.layout.output_width,
                    op, ": grad_output must have shape [", in.layout.batch, ", ", in.layout.output_width, "], got ",
                    grad_output.sizes());
  TORCH_CHECK_TYPE(grad_output.scalar_type() == at::kFloat, op, ": grad_output must be float32, got ",
                   grad_output.scalar_type());
  TORCH_CHECK_VALUE(grad_output.device() == indices.device(), op, ": grad_output must be on ", indices.device());
  std::vector<DeviceTable> tables;
  for (size_t t = 0; t < in.layout.tables.size(); ++t) {
    const Table& table = in.layout.tables[t];
    TORCH_CHECK_VALUE(t == 0 || table.row_start >= in.layout.tables[t - 1].row_start + in.layout.tables[t - 1].num_rows,
                      op, ": on CUDA, tables must be numbered in global-row order (table ", t, ")");
    tables.push_back({table.weight_offset, table.dim, table.row_start});
  }
  if (!tables.empty()) in.tables = to_device(tables, indices);
  if (per_sample_weights.has_value()) in.per_sample_weights = per_sample_weights->const_data_ptr<float>();
  return in;
}

// Sorts the occurrences and sums the gradient of every touched row (see SegmentGradients).
std::tuple<Segments, SegmentGradients> aggregate_gradients(const BackwardInputs& in) {
  Segments s;
  AT_DISPATCH_INDEX_TYPES(in.indices.scalar_type(), "embedding_bag_backward", [&] {
    s = sort_occurrences<index_t>(in.layout, in.indices, in.offsets, in.per_sample_weights != nullptr);
  });
  std::vector<int64_t> starts, dims;
  for (const Table& table : in.layout.tables) {
    starts.push_back(table.row_start);
    dims.push_back(table.dim);
  }
  SegmentGradients grads;
  const at::Tensor row_starts = to_device(starts, s.rows), table_dims = to_device(dims, s.rows);
  grads.dim = s.count() ? table_dims.index_select(0, at::searchsorted(row_starts, s.rows, false, /*right=*/true).sub(1))
                        : at::empty({0}, s.rows.options());
  const at::Tensor value_ends = grads.dim.cumsum(0);
  grads.offset = value_ends.sub(grads.dim);
  const int64_t total = s.count() ? value_ends.select(0, -1).item<int64_t>() : 0;
  grads.values = at::zeros({total}, in.grad.options());
  if (s.count() == 0) return {s, grads};
  const at::Tensor counts = s.ends.diff(1, 0, at::zeros({1}, s.ends.options()));
  const at::Tensor chunks = counts.add(kChunk - 1).div(kChunk, "floor");
  const at::Tensor first_chunk = chunks.cumsum(0).sub(chunks);
  const at::Tensor chunk_segment = at::repeat_interleave(chunks);
  const int64_t num_chunks = chunk_segment.numel();
  accumulate_kernel<<<blocks_for(num_chunks), kWarp * kWarpsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
      GradientSource{s.keys.const_data_ptr<int64_t>(),
                     in.per_sample_weights ? s.bag_of_position.const_data_ptr<int32_t>() : nullptr,
                     in.per_sample_weights, s.bag_grad_offset.const_data_ptr<int64_t>(),
                     s.bag_scale.const_data_ptr<float>(), in.grad.const_data_ptr<float>()},
      s.ends.const_data_ptr<int64_t>(), chunk_segment.const_data_ptr<int64_t>(), first_chunk.const_data_ptr<int64_t>(),
      grads.offset.const_data_ptr<int64_t>(), grads.dim.const_data_ptr<int64_t>(), num_chunks,
      grads.values.mutable_data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {s, grads};
}

std::tuple<at::Tensor, at::Tensor> embedding_bag_backward_sparse_cuda(
    const at::Tensor& grad_output, c10::IntArrayRef table_layout, c10::IntArrayRef feature_tables,
    const at::Tensor& indices, const at::Tensor& offsets, const std::optional<at::Tensor>& per_sample_weights) {
  static constexpr const char* op = "embedding_bag_backward_sparse";
  const c10::cuda::CUDAGuard guard(indices.device());
  const BackwardInputs in =
      prepare_backward(op, grad_output, -1, table_layout, feature_tables, indices, offsets, per_sample_weights);
  auto [s, grads] = aggregate_gradients(in);
  return {s.rows, grads.values};
}

at::Tensor embedding_bag_backward_per_sample_weights_cuda(const at::Tensor& grad_output, const at::Tensor& weights,
                                                          c10::IntArrayRef table_layout,
                                                          c10::IntArrayRef feature_tables, const at::Tensor& indices,
                                                          const at::Tensor& offsets) {
  static constexpr const char* op = "embedding_bag_backward_per_sample_weights";
  check_weights(op, weights);
  const c10::cuda::CUDAGuard guard(weights.device());
  const BackwardInputs in =
      prepare_backward(op, grad_output, weights.numel(), table_layout, feature_tables, indices, offsets, std::nullopt);
  at::Tensor out = at::empty({indices.numel()}, in.grad.options());
  const int64_t num_bags = int64_t(in.layout.features.size()) * in.layout.batch;
  if (num_bags == 0) return out;
  const at::Tensor features = to_device(device_features(in.layout), weights);
  ErrorFlags error(in.indices);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weights.scalar_type(), op, [&] {
    using weight_t = scalar_t;
    AT_DISPATCH_INDEX_TYPES(in.indices.scalar_type(), op, [&] {
      per_sample_weights_kernel<weight_t, index_t><<<blocks_for(num_bags), kWarp * kWarpsPerBlock, 0,
                                                     c10::cuda::getCurrentCUDAStream()>>>(
          weights.const_data_ptr<weight_t>(), reinterpret_cast<const DeviceFeature*>(features.const_data_ptr<int64_t>()),
          in.indices.const_data_ptr<index_t>(), in.offsets.const_data_ptr<index_t>(), in.grad.const_data_ptr<float>(),
          in.layout.batch, num_bags, in.indices.numel(), in.layout.output_width, out.mutable_data_ptr<float>(),
          error.data());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      raise_on_error<index_t>(error, in.layout, in.indices, in.offsets);
    });
  });
  return out;
}

void embedding_bag_backward_fused_cuda(const at::Tensor& grad_output, at::Tensor& weights, at::Tensor& state1,
                                       at::Tensor& state2, c10::IntArrayRef table_layout,
                                       c10::IntArrayRef feature_tables, const at::Tensor& indices,
                                       const at::Tensor& offsets, const std::optional<at::Tensor>& per_sample_weights,
                                       int64_t optimizer, double lr, double eps, double beta1, double beta2,
                                       double weight_decay, int64_t step) {
  static constexpr const char* op = "embedding_bag_backward_fused";
  const Optimizer kind = optimizer_kind(op, optimizer);
  check_weights(op, weights);
  const c10::cuda::CUDAGuard guard(weights.device());
  const BackwardInputs in = prepare_backward(op, grad_output, weights.numel(), table_layout, feature_tables, indices,
                                             offsets, per_sample_weights);
  check_optimizer_state(op, kind, weights, state1, state2, in.layout.total_rows, step);
  const OptimizerParams params(kind, lr, eps, beta1, beta2, weight_decay, step);
  auto [s, grads] = aggregate_gradients(in);
  const bool dense = kind == Optimizer::DenseAdam && in.layout.total_rows > 0;
  if (s.count() == 0 && !dense) return;
  const RowMath math{reinterpret_cast<const DeviceTable*>(in.tables.const_data_ptr<int64_t>()),
                     int64_t(in.layout.tables.size())};
  float* s1 = state1.numel() ? state1.mutable_data_ptr<float>() : nullptr;
  float* s2 = state2.numel() ? state2.mutable_data_ptr<float>() : nullptr;
  at::Tensor untouched;
  if (dense) {  // the rows of the tables (not the gaps between them) less the batch's
    untouched = at::zeros({in.layout.total_rows}, weights.options().dtype(at::kBool));
    for (const Table& table : in.layout.tables) untouched.narrow(0, table.row_start, table.num_rows).fill_(true);
    if (s.count()) untouched.index_fill_(0, s.rows, false);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weights.scalar_type(), op, [&] {
    if (s.count()) {
      fused_update_kernel<scalar_t><<<blocks_for(s.count()), kWarp * kWarpsPerBlock, 0,
                                      c10::cuda::getCurrentCUDAStream()>>>(
          math, s.rows.const_data_ptr<int64_t>(), grads.values.const_data_ptr<float>(),
          grads.offset.const_data_ptr<int64_t>(), s.count(), params, weights.mutable_data_ptr<scalar_t>(), s1, s2);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    if (dense) {
      untouched_adam_kernel<scalar_t><<<blocks_for(in.layout.total_rows), kWarp * kWarpsPerBlock, 0,
                                        c10::cuda::getCurrentCUDAStream()>>>(
          math, untouched.const_data_ptr<bool>(), in.layout.total_rows, params, weights.mutable_data_ptr<scalar_t>(),
          s1, s2);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CUDA, m) {
  m.impl("embedding_bag_forward", &embedding_bag_forward_cuda);
  m.impl("embedding_bag_backward_sparse", &embedding_bag_backward_sparse_cuda);
  m.impl("embedding_bag_backward_per_sample_weights", &embedding_bag_backward_per_sample_weights_cuda);
  m.impl("embedding_bag_backward_fused", &embedding_bag_backward_fused_cuda);
}

}  // namespace fastrec::embedding
