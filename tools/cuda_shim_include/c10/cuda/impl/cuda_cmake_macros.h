// Stand-in for the header a CUDA build of torch generates at its own build time and a CPU-only wheel lacks.
// Used only by the nvcc compile check (tools/cuda_compile_check), never by a real CUDA build.
#pragma once
#define C10_CUDA_BUILD_SHARED_LIBS
