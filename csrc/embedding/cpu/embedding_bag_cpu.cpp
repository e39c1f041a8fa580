// CPU kernels of the table-batched embedding bag (layout in embedding/embedding_bag.h).
//
// Forward: one parallel loop over the F * B bags in feature-major order, so each thread walks the bags of one table
// before the next (table-major: the table's hot rows stay in cache), prefetching rows a few indices ahead.
// Backward: the occurrences of each table are radix-sorted by row, so each touched row is visited by exactly one
// thread, its gradient aggregated over all its occurrences (duplicates included) once, and then either written out
// as a row-sparse gradient or applied in place by the fused optimizer. No dense gradient is ever materialized.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <memory>
#include <tuple>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "common/parallel.h"
#include "common/reusable_buffer.h"
#include "embedding/embedding_bag.h"

namespace fastrec::embedding {
namespace {

template <typename T>
std::unique_ptr<T[]> uninitialized(int64_t n) {
  return std::unique_ptr<T[]>(new T[std::max<int64_t>(n, 1)]);
}

// Grow-only scratch memory, one buffer per (thread, slot): the backward's per-call arrays (tens of MB at pooling
// 20) would otherwise be fresh mmaps whose page faults cost more than the sorting itself. Kept until the thread
// ends; valid until the same thread asks for the same slot again.
template <typename T, int kSlot>
T* scratch(int64_t n) {
  thread_local std::unique_ptr<T[]> buffer;
  thread_local int64_t capacity = 0;
  if (n > capacity) {
    capacity = std::max<int64_t>(n, 2 * capacity);
    buffer.reset(new T[capacity]);
  }
  return buffer.get();
}

// ---------------------------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------------------------
// Software prefetch pays in the backward's row-ordered walk; in the forward it measured slower than the hardware
// prefetcher and out-of-order loads (pooling 20: 12.9 vs 21.5 ms per batch), so the forward does not use it.
template <typename weight_t>
inline void prefetch_row(const weight_t* row, int64_t dim) {
  const char* p = reinterpret_cast<const char*>(row);
  for (int64_t byte = 0; byte < dim * int64_t(sizeof(weight_t)); byte += 64) __builtin_prefetch(p + byte, 0, 1);
}

// Pools bags [g_begin, g_end) of feature f (bag g = f * B + b) into their output rows. kDim > 0 fixes the dim at
// compile time and kWeighted whether per-sample weights exist: the accumulator then lives in registers (a runtime
// "weights or 1" inside the id loop, or an accumulator pointer that may alias the output, keeps it in memory).
// kStream writes the pooled row with streaming stores (see can_stream_output).
template <int kDim, bool kWeighted, bool kStream, typename weight_t, typename index_t>
void pool_feature_bags(const Layout& layout, int64_t f, int64_t g_begin, int64_t g_end, const weight_t* weights,
                       const index_t* indices, const index_t* offsets, const float* per_sample_weights, float* out) {
  const Feature& feat = layout.features[f];
  const int64_t dim = kDim > 0 ? kDim : feat.dim;
  const int64_t B = layout.batch;
  const weight_t* table = weights + feat.weight_offset;
  for (int64_t g = g_begin; g < g_end; ++g) {
    float* y = out + (g - f * B) * layout.output_width + feat.column;  // acc itself when kDim == 0
    const int64_t start = offsets[g], end = offsets[g + 1];
    const float scale = (feat.mean && end > start) ? 1.f / float(end - start) : 1.f;
    auto pool_into = [&](float* __restrict__ acc) {
      for (int64_t k = 0; k < dim; ++k) acc[k] = 0.f;
      for (int64_t i = start; i < end; ++i) {
        const int64_t id = indices[i];
        if (id < 0 || id >= feat.num_rows) throw_out_of_range(f, feat, i, id);
        const weight_t* __restrict__ row = table + id * dim;
        if constexpr (kWeighted) {
          const float w = per_sample_weights[i];
#pragma omp simd
          for (int64_t k = 0; k < dim; ++k) acc[k] += w * static_cast<float>(row[k]);
        } else {
#pragma omp simd
          for (int64_t k = 0; k < dim; ++k) acc[k] += static_cast<float>(row[k]);
        }
      }
#if defined(__AVX__)
      if constexpr (kStream) {  // aligned: can_stream_output and the caller checked the row's column
        const __m256 s8 = _mm256_set1_ps(scale);
        for (int64_t k = 0; k < kDim; k += 8) _mm256_stream_ps(y + k, _mm256_mul_ps(_mm256_loadu_ps(acc + k), s8));
        return;
      }
#endif
#pragma omp simd
      for (int64_t k = 0; k < dim; ++k) y[k] = acc[k] * scale;
    };
    if constexpr (kDim > 0) {
      float acc[kDim];
      pool_into(acc);
    } else {
      pool_into(y);
    }
  }
}

// Streaming (non-temporal) stores of the pooled rows. A normal store first reads the output line it writes (the
// read-for-ownership): for an output of tens of MB that has left the cache since the last step, that read is a third
// of the forward's memory traffic at pooling 1. Measured on the 2-core development machine (B=4096, 26 features,
// pooling 1, 2 threads, in one process against normal stores): forward 1.45-1.59x faster at D=64, 1.05-1.07x at
// D=16 and 32; a training step with a Linear layer reading the output is unchanged (the consumer then reads it from
// memory). Rows of 128 floats ran 1.5x slower streamed there (cause not found), hence kMaxStreamedDim. Outputs
// small enough to stay in cache for the next layer keep normal stores.
constexpr int kMaxStreamedDim = 64;
constexpr int64_t kMinStreamedOutputBytes = int64_t(4) << 20;

bool can_stream_output(const Layout& layout, const float* out) {
#if defined(__AVX__)
  return layout.batch * layout.output_width * int64_t(sizeof(float)) >= kMinStreamedOutputBytes &&
         layout.output_width % 8 == 0 && reinterpret_cast<uintptr_t>(out) % 32 == 0;
#else
  return false;
#endif
}

template <typename weight_t, typename index_t>
void forward_kernel(const Layout& layout, const weight_t* weights, const index_t* indices, const index_t* offsets,
                    const float* per_sample_weights, float* out) {
  const int64_t B = layout.batch;
  const int64_t num_bags = int64_t(layout.features.size()) * B;
  const int64_t avg_dim = std::max<int64_t>(1, layout.output_width / int64_t(layout.features.size()));
  // Chunks of bags in feature-major order (table-major: a table's rows are reused while hot), handed out
  // dynamically so that a thread descheduled on a busy machine does not hold the others at the barrier.
  const int64_t chunk = std::max<int64_t>(64, 16384 / avg_dim);
  const bool stream = can_stream_output(layout, out);
  parallel_for_chunks(num_bags, chunk, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end;) {
      const int64_t f = g / B;
      const int64_t run_end = std::min(end, (f + 1) * B);  // the bags of feature f in this chunk
      auto pool = [&](auto fixed_dim) {
        constexpr int kDim = decltype(fixed_dim)::value;
        auto run = [&](auto streamed) {
          constexpr bool kStream = decltype(streamed)::value && kDim > 0 && kDim <= kMaxStreamedDim;
          if (per_sample_weights != nullptr) {
            pool_feature_bags<kDim, true, kStream>(layout, f, g, run_end, weights, indices, offsets,
                                                   per_sample_weights, out);
          } else {
            pool_feature_bags<kDim, false, kStream>(layout, f, g, run_end, weights, indices, offsets, nullptr, out);
          }
        };
        if (stream && layout.features[f].column % 8 == 0) {
          run(std::true_type{});
        } else {
          run(std::false_type{});
        }
      };
      switch (layout.features[f].dim) {
        case 8: pool(std::integral_constant<int, 8>{}); break;
        case 16: pool(std::integral_constant<int, 16>{}); break;
        case 32: pool(std::integral_constant<int, 32>{}); break;
        case 64: pool(std::integral_constant<int, 64>{}); break;
        case 128: pool(std::integral_constant<int, 128>{}); break;
        default: pool(std::integral_constant<int, 0>{});
      }
      g = run_end;
    }
#if defined(__AVX__)
    if (stream) _mm_sfence();
#endif
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Backward: occurrences of each table sorted by row, segments of equal rows
// ---------------------------------------------------------------------------------------------------------------

// Stable LSD radix sort of `entries` by their bits [first_bit, first_bit + bits): as few passes as digits of at
// most 12 bits allow (a 4096-bucket histogram stays in L1), so tables of up to 16M rows sort in two passes.
void radix_sort(uint64_t* entries, uint64_t* tmp, int64_t n, int first_bit, int bits) {
  constexpr int kMaxDigitBits = 12;
  const int passes = std::max(1, (bits + kMaxDigitBits - 1) / kMaxDigitBits);
  const int digit_bits = (bits + passes - 1) / passes;
  const uint64_t buckets = uint64_t(1) << digit_bits, mask = buckets - 1;
  std::vector<int64_t> count(buckets);
  uint64_t *src = entries, *dst = tmp;
  for (int pass = 0, shift = first_bit; pass < passes; ++pass, shift += digit_bits) {
    std::fill(count.begin(), count.end(), 0);
    for (int64_t i = 0; i < n; ++i) ++count[(src[i] >> shift) & mask];
    int64_t sum = 0;
    for (auto& c : count) {
      const int64_t here = c;
      c = sum;
      sum += here;
    }
    for (int64_t i = 0; i < n; ++i) dst[count[(src[i] >> shift) & mask]++] = src[i];
    std::swap(src, dst);
  }
  if (src != entries) std::copy(src, src + n, entries);
}

// The touched rows of all tables. Each occurrence of an id is one 64-bit entry: the id (its row in the table) in
// the high half, its source in the low half: the bag id, or with per-sample weights its position i in indices
// (bag_of_position[i] then gives the bag), so the common case needs no extra random read. Sorting the entries of
// each table by row makes segment u = entries [start[u], start[u + 1]) the occurrences of global row row[u]
// (of table table[u]). All arrays are scratch memory of the calling thread (see scratch()).
struct Segments {
  int64_t count = 0;
  uint64_t* entry;
  int64_t *start, *row;
  int32_t* table;
  int32_t* bag_of_position = nullptr;  // only with per-sample weights
  // Per bag: where its gradient row starts in grad_output, and the pooling's factor (1, or 1/length for mean),
  // so that the row-ordered walk needs no division by the batch size per occurrence.
  int64_t* bag_grad_offset;
  float* bag_scale;
  std::vector<int64_t> table_first_segment;  // per table, plus the total at the end

  static int64_t id_of(uint64_t entry) { return int64_t(entry >> 32); }
  static int64_t source_of(uint64_t entry) { return int64_t(entry & 0xffffffffu); }
};

template <typename index_t>
Segments sort_occurrences(const Layout& layout, const index_t* indices, const index_t* offsets, int64_t num_indices,
                          bool weighted) {
  const int64_t B = layout.batch, T = int64_t(layout.tables.size());
  const int64_t num_bags = int64_t(layout.features.size()) * B;
  TORCH_CHECK_VALUE(num_bags < INT32_MAX && num_indices < INT32_MAX,
                    "embedding_bag: the backward supports fewer than 2^31 bags and ids per batch, got ", num_bags,
                    " bags and ", num_indices, " ids");
  std::vector<std::vector<int64_t>> features_of(T);
  std::vector<int64_t> region(T + 1, 0);
  for (int64_t f = 0; f < int64_t(layout.features.size()); ++f) {
    features_of[layout.features[f].table].push_back(f);
    region[layout.features[f].table + 1] += offsets[(f + 1) * B] - offsets[f * B];
  }
  for (int64_t t = 0; t < T; ++t) region[t + 1] += region[t];

  Segments s;
  s.entry = scratch<uint64_t, 0>(num_indices);
  if (weighted) s.bag_of_position = scratch<int32_t, 2>(num_indices);
  s.bag_grad_offset = scratch<int64_t, 3>(num_bags);
  s.bag_scale = scratch<float, 4>(num_bags);
  std::vector<int64_t> unique_rows(T, 0);
  parallel_for_dynamic(T, [&](int64_t t) {
    const Table& table = layout.tables[t];
    uint64_t* entries = s.entry + region[t];
    int64_t n = 0;
    for (const int64_t f : features_of[t]) {
      const Feature& feat = layout.features[f];
      for (int64_t g = f * B; g < (f + 1) * B; ++g) {
        const int64_t length = offsets[g + 1] - offsets[g];
        s.bag_grad_offset[g] = (g - f * B) * layout.output_width + feat.column;
        s.bag_scale[g] = (feat.mean && length > 0) ? 1.f / float(length) : 1.f;
        for (int64_t i = offsets[g]; i < offsets[g + 1]; ++i) {
          const int64_t id = indices[i];
          if (id < 0 || id >= table.num_rows) throw_out_of_range(f, layout.features[f], i, id);
          if (weighted) s.bag_of_position[i] = int32_t(g);
          entries[n++] = (uint64_t(id) << 32) | uint64_t(weighted ? i : g);
        }
      }
    }
    if (n > 1) {
      const int bits = std::bit_width(uint64_t(std::max<int64_t>(table.num_rows - 1, 1)));
      radix_sort(entries, scratch<uint64_t, 5>(n), n, 32, bits);
    }
    int64_t unique = 0;
    for (int64_t j = 0, previous = -1; j < n; ++j) {
      unique += Segments::id_of(entries[j]) != previous;
      previous = Segments::id_of(entries[j]);
    }
    unique_rows[t] = unique;
  });

  s.table_first_segment.assign(T + 1, 0);
  for (int64_t t = 0; t < T; ++t) s.table_first_segment[t + 1] = s.table_first_segment[t] + unique_rows[t];
  s.count = s.table_first_segment[T];
  s.start = scratch<int64_t, 7>(s.count + 1);
  s.row = scratch<int64_t, 6>(s.count);
  s.table = scratch<int32_t, 8>(s.count);
  s.start[s.count] = num_indices;
  parallel_for_dynamic(T, [&](int64_t t) {
    int64_t u = s.table_first_segment[t];
    for (int64_t j = region[t]; j < region[t + 1]; ++j) {
      const int64_t id = Segments::id_of(s.entry[j]);
      if (j == region[t] || id != Segments::id_of(s.entry[j - 1])) {
        s.start[u] = j;
        s.row[u] = layout.tables[t].row_start + id;
        s.table[u] = int32_t(t);
        ++u;
      }
    }
  });
  return s;
}

// Calls fn(u, table, element offset of the row, aggregated gradient of dim floats) for every segment u, each on
// exactly one thread; prefetch(u) is called a few segments ahead (the fused path prefetches the weight row).
// Occurrences are visited in row order, so their grad_out rows are random reads: they are prefetched ahead too.
template <typename Fn, typename Prefetch>
void for_each_row_gradient(const Layout& layout, const Segments& s, const float* grad_out,
                           const float* per_sample_weights, const Fn& fn, const Prefetch& prefetch) {
  constexpr int64_t kRowsAhead = 12, kOccurrencesAhead = 16;
  auto grad_row = [&](int64_t j, float* scale) {
    const int64_t v = Segments::source_of(s.entry[j]);
    const int64_t bag = per_sample_weights ? s.bag_of_position[v] : v;
    if (scale != nullptr) *scale = (per_sample_weights ? per_sample_weights[v] : 1.f) * s.bag_scale[bag];
    return grad_out + s.bag_grad_offset[bag];
  };
  parallel_for_chunks(s.count, 256, [&](int64_t begin, int64_t end) {
    auto acc = uninitialized<float>(layout.max_dim);
    for (int64_t u = begin; u < end; ++u) {
      if (u + kRowsAhead < end) prefetch(u + kRowsAhead);
      const Table& table = layout.tables[s.table[u]];
      const int64_t dim = table.dim;
      float* __restrict__ g = acc.get();
      std::fill(g, g + dim, 0.f);
      const int64_t last = s.start[end];
      for (int64_t j = s.start[u]; j < s.start[u + 1]; ++j) {
        if (j + kOccurrencesAhead < last) __builtin_prefetch(grad_row(j + kOccurrencesAhead, nullptr), 0, 1);
        float scale;
        const float* __restrict__ go = grad_row(j, &scale);
#pragma omp simd
        for (int64_t k = 0; k < dim; ++k) g[k] += scale * go[k];
      }
      fn(u, table, table.weight_offset + (s.row[u] - table.row_start) * dim, g);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Fused optimizers: one row at a time, in float32
// ---------------------------------------------------------------------------------------------------------------
template <typename weight_t>
inline void apply_update(const OptimizerParams& p, weight_t* __restrict__ w, float* __restrict__ state1,
                         float* __restrict__ state2, float* row_state, const float* __restrict__ g, int64_t dim) {
  switch (p.kind) {
    case Optimizer::SGD:
#pragma omp simd
      for (int64_t k = 0; k < dim; ++k) w[k] = weight_t(sgd_update(p, float(w[k]), g[k]));
      break;
    case Optimizer::Adagrad:
#pragma omp simd
      for (int64_t k = 0; k < dim; ++k) w[k] = weight_t(adagrad_update(p, float(w[k]), g[k], state1[k]));
      break;
    case Optimizer::RowWiseAdagrad: {
      float sum_sq = 0.f;
#pragma omp simd reduction(+ : sum_sq)
      for (int64_t k = 0; k < dim; ++k) {
        const float gk = g[k] + p.weight_decay * float(w[k]);
        sum_sq += gk * gk;
      }
      *row_state += dim > 0 ? sum_sq / float(dim) : 0.f;
      const float multiplier = rowwise_adagrad_multiplier(p.lr, p.eps, *row_state);
#pragma omp simd
      for (int64_t k = 0; k < dim; ++k) w[k] = weight_t(rowwise_adagrad_update(p, float(w[k]), g[k], multiplier));
      break;
    }
    case Optimizer::Adam:
    case Optimizer::DenseAdam:
#pragma omp simd
      for (int64_t k = 0; k < dim; ++k) w[k] = weight_t(adam_update(p, float(w[k]), g[k], state1[k], state2[k]));
      break;
  }
}

// DenseAdam's second pass: every row of every table that the batch did not touch takes Adam's step with a zero
// gradient (plus weight decay), so its moments decay and it keeps moving along them, as under torch.optim.Adam.
template <typename weight_t>
void step_untouched_rows(const Layout& layout, const Segments& s, const OptimizerParams& p, weight_t* w, float* m,
                         float* v) {
  std::vector<uint8_t> touched(layout.total_rows, 0);
  for (int64_t u = 0; u < s.count; ++u) touched[s.row[u]] = 1;
  for (const Table& table : layout.tables) {
    parallel_for_chunks(table.num_rows, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (touched[table.row_start + r]) continue;
        const int64_t element = table.weight_offset + r * table.dim;
        weight_t* __restrict__ row = w + element;
        float* __restrict__ row_m = m + element;
        float* __restrict__ row_v = v + element;
#pragma omp simd
        for (int64_t k = 0; k < table.dim; ++k) {
          row[k] = weight_t(adam_update(p, float(row[k]), 0.f, row_m[k], row_v[k]));
        }
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Op entry points
// ---------------------------------------------------------------------------------------------------------------
struct Inputs {
  Layout layout;
  at::Tensor indices, offsets;
  const float* per_sample_weights;
};

// weights: the buffer the op reads or updates, or nullptr for the sparse backward, which only needs the layout.
Inputs prepare(const char* op, const at::Tensor* weights, c10::IntArrayRef table_layout, c10::IntArrayRef feature_tables, const at::Tensor& indices, const at::Tensor& offsets,
               const std::optional<at::Tensor>& per_sample_weights) {
  if (weights != nullptr) check_weights(op, *weights);
  Inputs in{make_layout(op, indices.device(), weights ? weights->numel() : -1, table_layout, feature_tables, indices,
                        offsets, per_sample_weights),
            indices.contiguous(), offsets.contiguous(), nullptr};
  if (per_sample_weights.has_value()) in.per_sample_weights = per_sample_weights->const_data_ptr<float>();
  AT_DISPATCH_INDEX_TYPES(in.indices.scalar_type(), "embedding_bag_offsets", [&] {
    check_offsets(in.offsets.const_data_ptr<index_t>(), in.offsets.numel() - 1, in.indices.numel());
  });
  return in;
}

void check_grad_output(const char* op, const at::Tensor& grad_output, const Layout& layout) {
  TORCH_CHECK_VALUE(grad_output.dim() == 2 && grad_output.size(0) == layout.batch &&
                        grad_output.size(1) == layout.output_width,
                    op, ": grad_output must have shape [", layout.batch, ", ", layout.output_width, "], got ",
                    grad_output.sizes());
  TORCH_CHECK_TYPE(grad_output.scalar_type() == at::kFloat, op, ": grad_output must be float32, got ",
                   grad_output.scalar_type());
}

at::Tensor embedding_bag_forward_cpu(const at::Tensor& weights, c10::IntArrayRef table_layout,
                                     c10::IntArrayRef feature_tables, const at::Tensor& indices,
                                     const at::Tensor& offsets, const std::optional<at::Tensor>& per_sample_weights) {
  const Inputs in =
      prepare("embedding_bag_forward", &weights, table_layout, feature_tables, indices, offsets, per_sample_weights);
  // Every element of the output is written: into the previous call's memory when nothing holds it any more (a
  // fresh [B, sum D] buffer is a new mapping whose page faults cost as much as the lookups at pooling 1).
  static ReusableBuffer output_buffer;
  at::Tensor out = output_buffer.get({in.layout.batch, in.layout.output_width}, weights.options().dtype(at::kFloat));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weights.scalar_type(), "embedding_bag_forward", [&] {
    using weight_t = scalar_t;
    AT_DISPATCH_INDEX_TYPES(in.indices.scalar_type(), "embedding_bag_forward", [&] {
      forward_kernel<weight_t, index_t>(in.layout, weights.const_data_ptr<weight_t>(),
                                        in.indices.const_data_ptr<index_t>(), in.offsets.const_data_ptr<index_t>(),
                                        in.per_sample_weights, out.mutable_data_ptr<float>());
    });
  });
  return out;
}

template <typename weight_t>
inline float dot_row(const float* __restrict__ y, const weight_t* __restrict__ row, int64_t dim) {
  float dot = 0.f;
#pragma omp simd reduction(+ : dot)
  for (int64_t k = 0; k < dim; ++k) dot += y[k] * static_cast<float>(row[k]);
  return dot;
}

at::Tensor embedding_bag_backward_per_sample_weights_cpu(const at::Tensor& grad_output, const at::Tensor& weights,
                                                         c10::IntArrayRef table_layout, c10::IntArrayRef feature_tables,
                                                         const at::Tensor& indices, const at::Tensor& offsets) {
  static constexpr const char* op = "embedding_bag_backward_per_sample_weights";
  const Inputs in = prepare(op, &weights, table_layout, feature_tables, indices, offsets, std::nullopt);
  check_grad_output(op, grad_output, in.layout);
  const at::Tensor grad = grad_output.contiguous();
  at::Tensor out = at::empty({indices.numel()}, grad.options());
  const int64_t B = in.layout.batch, num_bags = int64_t(in.layout.features.size()) * B;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weights.scalar_type(), op, [&] {
    using weight_t = scalar_t;
    AT_DISPATCH_INDEX_TYPES(in.indices.scalar_type(), op, [&] {
      const weight_t* w = weights.const_data_ptr<weight_t>();
      const index_t* idx = in.indices.const_data_ptr<index_t>();
      const index_t* off = in.offsets.const_data_ptr<index_t>();
      const float* go = grad.const_data_ptr<float>();
      float* result = out.mutable_data_ptr<float>();
      parallel_for_chunks(num_bags, 256, [&](int64_t begin, int64_t end) {
        for (int64_t g = begin; g < end; ++g) {
          const int64_t f = g / B;
          const Feature& feat = in.layout.features[f];
          const float* __restrict__ y = go + (g - f * B) * in.layout.output_width + feat.column;
          const int64_t start = off[g], stop = off[g + 1];
          const float scale = (feat.mean && stop > start) ? 1.f / float(stop - start) : 1.f;
          for (int64_t i = start; i < stop; ++i) {
            const int64_t id = idx[i];
            if (id < 0 || id >= feat.num_rows) throw_out_of_range(f, feat, i, id);
            result[i] = dot_row(y, w + feat.weight_offset + id * feat.dim, feat.dim) * scale;
          }
        }
      });
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> embedding_bag_backward_sparse_cpu(
    const at::Tensor& grad_output, c10::IntArrayRef table_layout, c10::IntArrayRef feature_tables, const at::Tensor& indices, const at::Tensor& offsets,
    const std::optional<at::Tensor>& per_sample_weights) {
  static constexpr const char* op = "embedding_bag_backward_sparse";
  const Inputs in = prepare(op, nullptr, table_layout, feature_tables, indices, offsets, per_sample_weights);
  check_grad_output(op, grad_output, in.layout);
  const at::Tensor grad = grad_output.contiguous();
  at::Tensor rows, values;
  AT_DISPATCH_INDEX_TYPES(in.indices.scalar_type(), op, [&] {
    const Segments s = sort_occurrences(in.layout, in.indices.const_data_ptr<index_t>(),
                                        in.offsets.const_data_ptr<index_t>(), in.indices.numel(),
                                        in.per_sample_weights != nullptr);
    // Element offset of each table's first segment in the flat values output.
    std::vector<int64_t> value_base(in.layout.tables.size() + 1, 0);
    for (size_t t = 0; t < in.layout.tables.size(); ++t) {
      value_base[t + 1] = value_base[t] + (s.table_first_segment[t + 1] - s.table_first_segment[t]) * in.layout.tables[t].dim;
    }
    rows = at::empty({s.count}, in.indices.options().dtype(at::kLong));
    values = at::empty({value_base.back()}, grad.options());
    int64_t* row_out = rows.mutable_data_ptr<int64_t>();
    float* value_out = values.mutable_data_ptr<float>();
    for_each_row_gradient(in.layout, s, grad.const_data_ptr<float>(),
                          in.per_sample_weights, [&](int64_t u, const Table& table, int64_t, const float* g) {
                            const int64_t t = s.table[u];
                            row_out[u] = s.row[u];
                            std::copy(g, g + table.dim,
                                      value_out + value_base[t] + (u - s.table_first_segment[t]) * table.dim);
                          },
                          [](int64_t) {});
  });
  return {rows, values};
}

void embedding_bag_backward_fused_cpu(const at::Tensor& grad_output, at::Tensor& weights, at::Tensor& state1,
                                      at::Tensor& state2, c10::IntArrayRef table_layout,
                                      c10::IntArrayRef feature_tables, const at::Tensor& indices,
                                      const at::Tensor& offsets, const std::optional<at::Tensor>& per_sample_weights,
                                      int64_t optimizer, double lr, double eps, double beta1,
                                      double beta2, double weight_decay, int64_t step) {
  static constexpr const char* op = "embedding_bag_backward_fused";
  const Optimizer kind = optimizer_kind(op, optimizer);
  const Inputs in = prepare(op, &weights, table_layout, feature_tables, indices, offsets, per_sample_weights);
  check_grad_output(op, grad_output, in.layout);
  check_optimizer_state(op, kind, weights, state1, state2, in.layout.total_rows, step);
  const OptimizerParams params(kind, lr, eps, beta1, beta2, weight_decay, step);
  const at::Tensor grad = grad_output.contiguous();
  float* s1 = state1.numel() ? state1.mutable_data_ptr<float>() : nullptr;
  float* s2 = state2.numel() ? state2.mutable_data_ptr<float>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weights.scalar_type(), op, [&] {
    using weight_t = scalar_t;
    weight_t* w = weights.mutable_data_ptr<weight_t>();
    AT_DISPATCH_INDEX_TYPES(in.indices.scalar_type(), op, [&] {
      const Segments s = sort_occurrences(in.layout, in.indices.const_data_ptr<index_t>(),
                                          in.offsets.const_data_ptr<index_t>(), in.indices.numel(),
                                          in.per_sample_weights != nullptr);
      for_each_row_gradient(in.layout, s, grad.const_data_ptr<float>(),
                            in.per_sample_weights,
                            [&](int64_t u, const Table& table, int64_t element, const float* g) {
                              float* row_state = kind == Optimizer::RowWiseAdagrad ? s1 + s.row[u] : nullptr;
                              apply_update(params, w + element, s1 && !row_state ? s1 + element : nullptr,
                                           s2 ? s2 + element : nullptr, row_state, g, table.dim);
                            },
                            [&](int64_t u) {
                              const Table& table = in.layout.tables[s.table[u]];
                              const int64_t row = s.row[u];
                              const int64_t element = table.weight_offset + (row - table.row_start) * table.dim;
                              prefetch_row(w + element, table.dim);
                              if (s1 != nullptr) prefetch_row(kind == Optimizer::RowWiseAdagrad ? s1 + row : s1 + element,
                                                              kind == Optimizer::RowWiseAdagrad ? 1 : table.dim);
                              if (s2 != nullptr) prefetch_row(s2 + element, table.dim);
                            });
      if (kind == Optimizer::DenseAdam) step_untouched_rows(in.layout, s, params, w, s1, s2);
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CPU, m) {
  m.impl("embedding_bag_forward", &embedding_bag_forward_cpu);
  m.impl("embedding_bag_backward_sparse", &embedding_bag_backward_sparse_cpu);
  m.impl("embedding_bag_backward_per_sample_weights", &embedding_bag_backward_per_sample_weights_cpu);
  m.impl("embedding_bag_backward_fused", &embedding_bag_backward_fused_cpu);
}

}  // namespace fastrec::embedding
