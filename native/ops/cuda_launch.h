// The ATen side of a launch of the CUDA kernels (native/cuda/kernels.h): the kernels' dtype tag, their error
// strings as JS-visible errors, and the current stream. Only in builds with the kernels (PREFIX_RL_CUDA_KERNELS).
#pragma once

#ifdef PREFIX_RL_CUDA_KERNELS
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <string>

#include "common.h"
#include "cuda/kernels.h"

namespace prefix_rl {

inline cuda::LogitsType cuda_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return cuda::LogitsType::Float32;
    case at::kBFloat16: return cuda::LogitsType::BFloat16;
    case at::kHalf: return cuda::LogitsType::Float16;
    default: invalid_argument("the CUDA kernels take float32, bfloat16 or float16 logits, got " + dtype_name(type));
  }
}

inline void check_cuda(const char* error) {
  if (error) throw Error(ErrorCode::Torch, std::string("CUDA kernel failed: ") + error);
}

// The current stream of the current device (a CUDAGuard sets the device first).
inline void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Whether the kernels can run on `t`'s data: a CUDA tensor of a type they take, on a device they were built for.
inline bool cuda_kernels_for(const at::Tensor& t) { return t.is_cuda() && t.scalar_type() != at::kDouble && cuda::kernels_available(t.get_device()); }

}  // namespace prefix_rl
#endif
