// CUDA kernels of the fused log-prob primitives, over raw device pointers (no ATen types here), so that they build
// against any CUDA toolkit and are compiled and linked in CI even without a GPU or a CUDA libtorch. The ATen-side
// dispatch lives in native/ops/logprobs.cc. Each launcher returns nullptr on success or a CUDA error string.
#pragma once

#include <cstdint>

namespace prefix_rl::cuda {

enum class LogitsType { Float32, BFloat16, Float16 };
enum class LogprobType { Float32, Float64 };

// Whether the kernels have an image for `device` (compiled for its compute capability, or PTX it can JIT). The ATen
// dispatch falls back to ATen ops where they do not. Remembered per device.
bool kernels_available(int device);

// Largest K the kernels take (indices and gradients live in shared memory); larger K uses the ATen composition.
constexpr int64_t kMaxGatherK = 64;
constexpr int64_t kMaxTopK = 16;

// logp[n, k] = scale·x[n, index[n, k]] − lse[n],  lse[n] = log Σ_v exp(scale·x[n, v]); one block per row,
// one online-softmax pass over the row (the sum in float, as on the CPU). Float64 log-probs are formed in double
// from max + log(sum) in double, so each is rounded once; `lse` (for the backward) is written in float.
const char* gather_logprobs_forward(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, const int64_t* index, int64_t K,
                                    void* logp, LogprobType logp_type, float* lse, void* stream);

// grad[n, v] = scale·(Σ_k g[n, k]·[v = index[n, k]] − (Σ_k g[n, k])·exp(scale·x[n, v] − lse[n])), written in the
// logits' type in the CPU kernel's order (the dense term rounded, then each gathered term added); rows whose g is
// all zero are written as zeros without reading x. `grad_logits` may be `logits` (in-place backward).
const char* gather_logprobs_backward(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, const float* lse, const int64_t* index,
                                     const float* grad_logp, int64_t K, void* grad_logits, void* stream);

// Entropy of softmax(scale·x) per row, as the CPU kernel computes it: lse[n] first, then H[n] = Σ_v p_v·(lse − z_v)
// (non-negative terms; p_v < e^−87 counts as zero). Writes lse and H in float.
const char* token_entropy_forward(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, float* lse, float* entropy, void* stream);

// grad[n, v] = g[n]·scale·p_v·(lse − z_v − H), written in the logits' type (exact zeros where g[n] = 0).
const char* token_entropy_backward(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, const float* lse, const float* entropy,
                                   const float* grad_entropy, void* grad_logits, void* stream);

// Per row: the top-k logits ranked as the CPU ranks them (by the unscaled value, descending; equal values keep the
// lower id), written scaled, with their ids; the scaled logit of tokens[n] (not written when tokens is null); and lse[n].
const char* row_topk(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, int64_t k, const int64_t* tokens, int64_t* ids,
                     float* values, float* token_value, float* lse, void* stream);

// The fused LM head's per-chunk kernels, over one vocabulary chunk's logits x [N, C] (the head GEMM's output, in the
// model's dtype). row_lse_entropy: lse[n] of scale·x[n] and, when `entropy` is not null, its entropy (as
// token_entropy_forward), both in float.
const char* row_lse_entropy(const void* logits, LogitsType type, int64_t N, int64_t C, float scale, float* lse, float* entropy, void* stream);

// chunk_softmax: overwrites x with p_v = exp(scale·x_v − lse[n]) (lse[n]: the chunk row's own), zeros where
// lse[n] = −inf (no mass) and at each index[n, k] inside the chunk [begin, begin + C): the frozen head's
// expectation over the other tokens, Σ_{v ∉ index} p_v·W_v, takes it as a GEMM's operand.
const char* chunk_softmax(void* logits, LogitsType type, int64_t N, int64_t C, float scale, const float* lse, const int64_t* index, int64_t K,
                          int64_t begin, void* stream);

// head_chunk_backward: overwrites x with ∂L/∂x_v = scale·p_v·(g_H·(lse − z_v − H) − g_sum), z = scale·x and
// p = e^{z − lse} (lse, H: the whole row's), then adds scale·g[n, k] at each index[n, k] inside the chunk
// [begin, begin + C), in k order as the CPU row kernel does. g_sum[n] sums all of row n's log-prob gradients; g_H
// and H may be null (no entropy gradient). A row with no gradient is written as exact zeros.
const char* head_chunk_backward(void* logits, LogitsType type, int64_t N, int64_t C, float scale, const float* lse, const float* g_sum,
                                const float* g_entropy, const float* entropy, const int64_t* index, const float* g, int64_t K, int64_t begin,
                                void* stream);

}  // namespace prefix_rl::cuda
