// Batched sampling from a Decoder with its KV cache: temperature, top-k, top-p, a seed, EOS ids, stop sequences and a
// budget of new tokens; per-token log-probs and optionally the top-K candidates at every step.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "model/decoder.h"

namespace prefix_rl {

struct SamplingOptions {
  int64_t max_new_tokens = 16;
  double temperature = 1.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;
  std::vector<int64_t> eos_token_ids;
  std::vector<std::vector<int64_t>> stop_sequences;  // a row stops once its new tokens end with one of these
  int64_t top_logprobs = 0;                          // candidates recorded per step (0 = none)
  // Called after each step with the step's token and log-prob per row and whether the row produced it (it had not
  // finished before): streaming. Runs on the generating thread; must not throw.
  std::function<void(const std::vector<int64_t>& tokens, const std::vector<float>& logprobs, const std::vector<uint8_t>& produced)> on_step;
};

enum class FinishReason : int64_t { Length = 0, Eos = 1, Stop = 2 };

struct Generation {
  at::Tensor tokens;          // [B, N] int64 (CPU), N = steps run; positions past a row's length hold 0
  at::Tensor logprobs;        // [B, N] float32: log softmax(logits / temperature) at the token (temperature 1 if greedy)
  at::Tensor lengths;         // [B] int64: new tokens per row, the EOS or stop sequence included
  at::Tensor finish_reasons;  // [B] int64 FinishReason
  at::Tensor top_tokens;      // [B, N, K] int64, or undefined when top_logprobs = 0
  at::Tensor top_logprobs;    // [B, N, K] float32, same distribution as `logprobs`
};

// prompt_ids [B, P] left-padded (each row's tokens end at column P - 1), prompt_mask [B, P] (undefined = no padding).
// The same seed, prompts and options give the same tokens on the same device.
Generation generate(const Decoder& model, const at::Tensor& prompt_ids, const at::Tensor& prompt_mask, const SamplingOptions& options);

}  // namespace prefix_rl
