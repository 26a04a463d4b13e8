// Fused log-prob primitives over [N, V] logits (any leading shape, last dim = vocabulary):
//   gather_logprobs:  log softmax(scale·logits)[index] for a few indices per row, differentiable w.r.t. logits
//                     (forward: one logsumexp pass + gather; backward: one pass writing the gradient row).
//   candidate_set:    π_old's top-k candidates with the sampled token forced into slot 0, their log-probs, and the
//                     candidate mask (P_min threshold in log space, optional top-p), in one pass per row.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace prefix_rl {

// logits [..., V] (float32/float64/bfloat16/float16), index [..., K] int64 → [..., K] log-probs (float32, or
// float64 for float64 logits). `out_type` float64 returns them in float64 whatever the logits, not rounded to
// float32 on the CPU path (the CUDA kernels write float32): how the objectives take differences of log-probs.
// `temperature` divides the logits first.
// `inplace_backward` writes the gradient into the logits' own memory (no [N, V] allocation): the logits are consumed
// by backward, so use it only when nothing reads them afterwards (the usual case for an LM head's output). Their
// version counter is bumped, so autograd rejects any other node that saved them instead of reading garbage.
at::Tensor gather_logprobs(const at::Tensor& logits, const at::Tensor& index, double temperature = 1.0, bool inplace_backward = false,
                           std::optional<at::ScalarType> out_type = std::nullopt);

// Same, with no autograd graph (reference models, π_old).
at::Tensor gather_logprobs_nograd(const at::Tensor& logits, const at::Tensor& index, double temperature = 1.0,
                                  std::optional<at::ScalarType> out_type = std::nullopt);

// logits [..., V] → [...] entropy of softmax(logits / temperature), differentiable w.r.t. logits (float32, or
// float64 for float64 logits). CPU: one logsumexp pass and one entropy pass per row forward, one pass backward;
// other devices compose ATen ops.
at::Tensor token_entropy(const at::Tensor& logits, double temperature = 1.0);

struct CandidateOptions {
  int64_t k = 5;              // slots per position (slot 0 is the sampled token)
  double min_p = 0.1;         // P_min
  bool strict = true;         // reference: π_old > P_min; paper: π_old ≥ P_min
  double top_p = 1.0;         // keep candidates whose sorted cumulative π_old ≤ top_p (1 = off)
  bool force_sampled = true;  // reference: the sampled token is always a candidate
  bool exclude_last = true;   // reference: no candidates at the last response position
  double temperature = 1.0;
};

struct CandidateSet {
  at::Tensor indices;       // [B, T, K] int64, slot 0 = sampled token
  at::Tensor old_logprobs;  // [B, T, K] log π_old at the indices
  at::Tensor mask;          // [B, T, K] bool
};

// old_logits [B, T, V], tokens [B, T] int64, mask [B, T] (response mask, right-padded).
CandidateSet candidate_set(const at::Tensor& old_logits, const at::Tensor& tokens, const at::Tensor& mask, const CandidateOptions& options);

// Refuses options outside their ranges (K in [1, V], P_min in (0, 1), top-p in (0, 1], temperature > 0).
void check_candidate_options(const CandidateOptions& options, int64_t V);

// The candidate set's per-position tail, from each position's top-K (ids [N, K] and scaled logits [N, K], largest
// first, N = B·T), the sampled token's scaled logit [N] and the row's logsumexp [N] (float64 or float32): forces the
// sampled token into slot 0, takes log-probs as value − lse (one rounding), applies P_min / top-p and the positions
// `mask` [B, T] allows. Runs on the CPU (a few bytes per position); the result is moved to `device`.
CandidateSet candidates_from_topk(const at::Tensor& top_ids, const at::Tensor& top_values, const at::Tensor& token_values, const at::Tensor& lse,
                                  const at::Tensor& tokens, const at::Tensor& mask, const CandidateOptions& options, at::Device device);

// The accumulation (and default log-prob) dtype for logits of `logits_type`: float64 for float64, else float32.
at::ScalarType acc_type(at::ScalarType logits_type);

// Validation shared by the objectives: names the argument in every error.
void check_logits(const at::Tensor& logits, const char* name);
void check_tokens(const at::Tensor& tokens, const at::Tensor& logits, const char* name);
// Every id of `index` in [0, V) (one device sync), or an error naming the first one outside.
void check_index_range(const at::Tensor& index, int64_t V);

}  // namespace prefix_rl
