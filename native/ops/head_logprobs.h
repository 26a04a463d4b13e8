// The fused LM head: log-probs, token entropy and π_old's candidate set straight from hidden states, never building
// [N, V] logits. The vocabulary is streamed in chunks of `chunk` rows of the head's weight: each chunk's logits
// [N, chunk] are one GEMM, folded into an online logsumexp (and entropy, and a running top-K) and the gather, then
// dropped. The backward recomputes each chunk's logits (one more head GEMM) and accumulates ∂L/∂hidden and ∂L/∂W
// chunk by chunk. At most one or two [N, chunk] buffers are alive at a time.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "ops/logprobs.h"

namespace prefix_rl {

// A LoRA adapter on the head enters as its low-rank term: logits = hidden · Wᵀ + hidden_r · Bᵀ with
// hidden_r = scale · hidden · Aᵀ [..., r] (computed by the caller, so A's gradient is ordinary autograd) and B the
// adapter's [V, r] factor, both in hidden's dtype. Chunk by chunk it costs one [N, r] × [r, chunk] GEMM more; the
// backward gives ∂L/∂hidden_r and ∂L/∂B alongside ∂L/∂hidden and ∂L/∂W. Undefined (the default): no adapter.
struct HeadLora {
  at::Tensor hidden;  // [..., r]
  at::Tensor weight;  // [V, r]
  bool defined() const { return hidden.defined() || weight.defined(); }
};

struct HeadLogprobs {
  at::Tensor logprobs;  // [..., K]
  at::Tensor entropy;   // [...], when asked for
};

// hidden [..., H] (float32/float64/bfloat16/float16), weight [V, H] of the same dtype, index [..., K] int64 →
// log softmax(hidden · Wᵀ / temperature)[index] as [..., K] (and, with `entropy`, the softmax's entropy [...]): in
// float32, or float64 for float64 inputs or out_type float64 (each log-prob formed in float64 from a float64
// logsumexp, rounded once). Differentiable with respect to hidden and weight (a tied head's weight is the
// embedding: its gradient accumulates there). Equal to the unfused path (linear → log_softmax → gather) up to
// summation order. A frozen head (weight, and B, not requiring grad) costs two head GEMMs instead of three: the
// forward accumulates the softmax's expectation of the head's rows, and the backward needs no logits — unless the
// entropy's gradient is to be taken: `entropy_gradient = false` says it will not be (the entropy a metric only).
HeadLogprobs head_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& index, double temperature = 1.0,
                           int64_t chunk = 4096, bool entropy = false, std::optional<at::ScalarType> out_type = std::nullopt,
                           const HeadLora& lora = {}, bool entropy_gradient = true);

// π_old's candidate set (candidate_set in ops/logprobs.h) from hidden states [B, T, H] and the head's weight [V, H]:
// the top-K is kept across chunks (ties keep the lower token id, as the CPU and CUDA candidate_set do), and each
// candidate's log-prob is exactly what head_logprobs gives at that token, so π_θ / π_old is 1 on-policy. No graph.
CandidateSet head_candidate_set(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& tokens, const at::Tensor& mask,
                                const CandidateOptions& options, int64_t chunk = 4096, const HeadLora& lora = {});

}  // namespace prefix_rl
