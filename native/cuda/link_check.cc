// Link check for CPU-libtorch builds: references every CUDA launcher so that CI compiles the kernels for sm_90 and
// links them (static CUDA runtime) even where no CUDA libtorch exists. Not loaded by the addon.
#include "cuda/kernels.h"

extern "C" {
__attribute__((visibility("default"))) const void* prefix_rl_cuda_launchers[] = {
    reinterpret_cast<const void*>(&prefix_rl::cuda::gather_logprobs_forward),
    reinterpret_cast<const void*>(&prefix_rl::cuda::gather_logprobs_backward),
    reinterpret_cast<const void*>(&prefix_rl::cuda::row_topk),
    reinterpret_cast<const void*>(&prefix_rl::cuda::token_entropy_forward),
    reinterpret_cast<const void*>(&prefix_rl::cuda::token_entropy_backward),
    reinterpret_cast<const void*>(&prefix_rl::cuda::row_lse_entropy),
    reinterpret_cast<const void*>(&prefix_rl::cuda::chunk_softmax),
    reinterpret_cast<const void*>(&prefix_rl::cuda::head_chunk_backward),
    reinterpret_cast<const void*>(&prefix_rl::cuda::kernels_available),
};
}
