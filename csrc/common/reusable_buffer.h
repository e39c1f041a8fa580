// Output buffers that keep their memory from call to call.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <mutex>

namespace fastrec {

// Hands out an uninitialized tensor of the requested shape, reusing the memory of the one it handed out last time
// when nothing else holds that one any more (no tensor, view or Python object refers to it or its storage). A large
// fresh CPU allocation is a new mapping whose every page faults on first write; for a kernel that streams its
// output once (the FM backward writes [B, F, K]) those faults cost as much as the kernel. The slot keeps at most one
// buffer alive between calls.
class ReusableBuffer {
 public:
  at::Tensor get(at::IntArrayRef sizes, const at::TensorOptions& options) {
    const std::lock_guard<std::mutex> lock(mutex_);
    const bool reusable = buffer_.defined() && buffer_.use_count() == 1 && buffer_.storage().use_count() == 1 &&
                          buffer_.sizes() == sizes && buffer_.options().type_equal(options) &&
                          buffer_.device() == options.device();
    if (!reusable) {
      buffer_ = at::Tensor();  // free the old memory before taking new
      buffer_ = at::empty(sizes, options);
    }
    return buffer_;
  }

 private:
  std::mutex mutex_;
  at::Tensor buffer_;
};

}  // namespace fastrec
