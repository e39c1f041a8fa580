// CUDA forward of the table-batched embedding bag (layout in embedding/embedding_bag.h): one warp per bag, lanes
// over the embedding dim, float32 accumulation. Compiled in CI as a check; not yet run on a GPU.
// The backward ops (row-sparse gradient, fused optimizers) have no CUDA kernel yet: they raise on CUDA tensors.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <vector>

#include "embedding/embedding_bag.h"

namespace fastrec::embedding {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

struct DeviceFeature {
  int64_t weight_offset, dim, num_rows, column, mean;
};

// error[0]: 1 + the position of the first out-of-range id (0: none); error[1]: 1 + the first bag whose offsets
// decrease (0: none); error[2]: 1 when offsets do not start at 0 or do not end at len(indices).
template <typename weight_t, typename index_t>
__global__ void forward_kernel(const weight_t* __restrict__ weights, const DeviceFeature* __restrict__ features,
                               const index_t* __restrict__ indices, const index_t* __restrict__ offsets,
                               const float* __restrict__ per_sample_weights, int64_t batch, int64_t num_bags,
                               int64_t num_indices, int64_t output_width, float* __restrict__ out,
                               unsigned long long* error) {
  const int64_t g = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (g >= num_bags) return;
  if (g == 0 && lane == 0 && (offsets[0] != 0 || int64_t(offsets[num_bags]) != num_indices)) error[2] = 1;
  const int64_t f = g / batch, b = g % batch;
  const DeviceFeature feat = features[f];
  const int64_t start = offsets[g], end = offsets[g + 1];
  if (end < start) {
    if (lane == 0) atomicMin(error + 1, static_cast<unsigned long long>(g + 1));
    return;
  }
  float* y = out + b * output_width + feat.column;
  const weight_t* table = weights + feat.weight_offset;
  const float scale = (feat.mean && end > start) ? 1.f / float(end - start) : 1.f;
  for (int64_t k = lane; k < feat.dim; k += kWarp) {
    float acc = 0.f;
    for (int64_t i = start; i < end; ++i) {
      const int64_t id = indices[i];
      if (id < 0 || id >= feat.num_rows) {
        atomicMin(error, static_cast<unsigned long long>(i + 1));
        continue;  // never read out of bounds; the host raises after the kernel
      }
      const float w = per_sample_weights ? per_sample_weights[i] : 1.f;
      acc += w * static_cast<float>(table[id * feat.dim + k]);
    }
    y[k] = acc * scale;
  }
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
  std::vector<int64_t> host;
  for (const Feature& feat : layout.features) {
    host.insert(host.end(), {feat.weight_offset, feat.dim, feat.num_rows, feat.column, int64_t(feat.mean)});
  }
  at::Tensor features = at::empty({int64_t(host.size())}, indices.options().dtype(at::kLong).device(at::kCPU));
  std::copy(host.begin(), host.end(), features.mutable_data_ptr<int64_t>());
  features = features.to(weights.device());
  at::Tensor error = at::zeros({3}, indices.options().dtype(at::kLong));
  at::Tensor out = at::empty({layout.batch, layout.output_width}, weights.options().dtype(at::kFloat));
  const int64_t num_bags = int64_t(layout.features.size()) * layout.batch;
  if (num_bags == 0) return out;
  const auto blocks = static_cast<unsigned int>((num_bags + kWarpsPerBlock - 1) / kWarpsPerBlock);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weights.scalar_type(), op, [&] {
    using weight_t = scalar_t;
    AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), op, [&] {
      forward_kernel<weight_t, index_t><<<blocks, kWarp * kWarpsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
          weights.const_data_ptr<weight_t>(), reinterpret_cast<const DeviceFeature*>(features.const_data_ptr<int64_t>()),
          indices.const_data_ptr<index_t>(), offsets.const_data_ptr<index_t>(),
          per_sample_weights.has_value() ? per_sample_weights->const_data_ptr<float>() : nullptr, layout.batch, num_bags,
          indices.numel(), layout.output_width, out.mutable_data_ptr<float>(),
          reinterpret_cast<unsigned long long*>(error.mutable_data_ptr<int64_t>()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  const at::Tensor host_error = error.cpu();  // synchronizes: bad input must raise, not return garbage
  const int64_t* errors = host_error.const_data_ptr<int64_t>();
  const int64_t bad_id = errors[0], bad_bag = errors[1];
  TORCH_CHECK_VALUE(errors[2] == 0, op, ": offsets must start at 0 and end at len(indices) = ", indices.numel());
  TORCH_CHECK_VALUE(bad_bag == 0, op, ": offsets must be non-decreasing (bag ", bad_bag - 1, ")");
  TORCH_CHECK_INDEX(bad_id == 0, op, ": id at indices[", bad_id - 1, "] is out of range for its table");
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CUDA, m) {
  m.impl("embedding_bag_forward", &embedding_bag_forward_cuda);
}

}  // namespace fastrec::embedding
