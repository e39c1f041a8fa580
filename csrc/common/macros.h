// Helpers shared by CPU and CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define FASTREC_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FASTREC_HOST_DEVICE inline
#endif

// Parallel chunks get at least this many scalar operations, so that small batches do not pay thread start-up.
constexpr int64_t kFastrecMinWorkPerThread = 32768;
