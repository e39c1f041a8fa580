// Parallel loops beyond at::parallel_for's static split.
#pragma once

#include <ATen/Parallel.h>

#include <exception>
#include <mutex>

namespace fastrec {

// fn(i) for i in [0, n) with dynamic scheduling on torch's intra-op threads: for few, uneven work items
// (embedding tables of very different sizes). The first exception thrown by fn is rethrown on the caller's thread.
template <typename Fn>
void parallel_for_dynamic(int64_t n, const Fn& fn) {
  std::exception_ptr error;
  std::once_flag error_once;
#pragma omp parallel for schedule(dynamic, 1) num_threads(at::get_num_threads()) if (n > 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      fn(i);
    } catch (...) {
      std::call_once(error_once, [&] { error = std::current_exception(); });
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace fastrec
