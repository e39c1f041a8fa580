// Parallel loops beyond at::parallel_for's static split.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
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

// fn(begin, end) over [0, n) in chunks of `chunk`, handed out dynamically on torch's intra-op threads: when one
// thread is descheduled (a busy machine), the others take its share instead of waiting for it.
template <typename Fn>
void parallel_for_chunks(int64_t n, int64_t chunk, const Fn& fn) {
  const int64_t num_chunks = (n + chunk - 1) / chunk;
  parallel_for_dynamic(num_chunks, [&](int64_t c) { fn(c * chunk, std::min(n, (c + 1) * chunk)); });
}

}  // namespace fastrec
