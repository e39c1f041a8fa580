// Output buffers that keep their memory from call to call.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/Storage.h>

#include <mutex>
#include <vector>

namespace fastrec {

// Hands out an uninitialized contiguous tensor of the requested shape over the memory of the one it handed out last
// time, when no tensor or view uses that memory any more. A large fresh CPU allocation is a new mapping whose every
// page faults on first write; for a kernel that streams its output once (the FM backward writes [B, F, K]) those
// faults cost as much as the kernel. Each call returns a new tensor object: only the memory (the storage) is kept,
// and it is reused only while this slot holds the sole reference to it. At most one buffer stays alive per slot.
class ReusableBuffer {
 public:
  at::Tensor get(at::IntArrayRef sizes, const at::TensorOptions& options) {
    const std::lock_guard<std::mutex> lock(mutex_);
    int64_t numel = 1;
    std::vector<int64_t> strides(sizes.size());
    for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
      strides[d] = numel;
      numel *= sizes[d];
    }
    const size_t nbytes = static_cast<size_t>(numel) * options.dtype().itemsize();
    const bool reusable = storage_ && storage_.use_count() == 1 && storage_.nbytes() == nbytes &&
                          storage_.device() == options.device() && dtype_ == options.dtype();
    if (!reusable) {
      storage_ = c10::Storage();  // free the old memory before taking new
      at::Tensor fresh = at::empty(sizes, options);
      storage_ = fresh.storage();
      dtype_ = options.dtype();
      return fresh;
    }
    return at::empty({0}, options).set_(storage_, 0, sizes, strides);
  }

 private:
  std::mutex mutex_;
  c10::Storage storage_;
  caffe2::TypeMeta dtype_;
};

}  // namespace fastrec
