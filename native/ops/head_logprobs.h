// The fused LM head: log-probs at given tokens straight from hidden states, never building [N, V] logits. The
// vocabulary is streamed in chunks of `chunk` rows of the head's weight: each chunk's logits [N, chunk] are one GEMM,
// folded into an online logsumexp and the gather, then dropped. The backward recomputes each chunk's logits (one
// more head GEMM) and accumulates ∂L/∂hidden and ∂L/∂W chunk by chunk. ATen ops only, so it runs on any device.
#pragma once

#include <ATen/ATen.h>

namespace prefix_rl {

// hidden [..., H] (float32/float64/bfloat16/float16), weight [V, H] of the same dtype, index [..., K] int64 →
// log softmax(hidden · Wᵀ / temperature)[index] as [..., K]: float32, or float64 for float64 inputs.
// Differentiable with respect to hidden and weight (a tied head's weight is the embedding: its gradient accumulates
// there). Equal to the unfused path (linear → log_softmax → gather) up to summation order.
at::Tensor head_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& index, double temperature = 1.0, int64_t chunk = 4096);

}  // namespace prefix_rl
