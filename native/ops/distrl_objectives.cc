// DistRL objectives (implemented-math.md §3):
//   distrl_candidates  π_old's candidate set (from logits, or from hidden states through the fused LM head) (reference: top-K with the sampled token
//   forced into slot 0, strict
//                      P_min, optional top-p, last position excluded; paper: every token with π_old ≥ P_min)
//   distrl_td          candidate TD β·(log π_φ − log π_old) at the candidates, zero from the last position on
//   distrl_loss        Tok-PPO on sampled tokens + α·Dist-PPO over the candidates, in the reference (dual clip,
//                      π_old-weighted candidate mean) or paper (eq. 11-12, per-sequence 1/T) convention
// Advantages (GRPO + GAE over the sampled-token TD) are computed in TS: lib/rl/advantages.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "common.h"
#include "ops/head_logprobs.h"
#include "ops/logprobs.h"
#include "ops/objectives.h"

namespace prefix_rl {
namespace {

// π_old's model output: its logits (oldLogits), or its hidden states (oldHidden) and LM-head weight (headWeight, and
// a LoRA's loraHidden and loraWeight) for the fused head (ops/head_logprobs.h, `chunkSize` vocabulary rows at a
// time: no [B, T, V] logits).
ObjectiveOutputs distrl_candidates(const ObjectiveInputs& in) {
  in.expect_only({"oldLogits", "oldHidden", "headWeight", "loraHidden", "loraWeight", "chunkSize", "tokens", "mask", "k", "minP", "topP",
                  "temperature", "conventions"});
  const bool fused = in.has("oldHidden");
  if (fused == in.has("oldLogits")) invalid_argument("distrl_candidates takes oldLogits or oldHidden (with headWeight), one of the two");
  const bool paper = paper_convention(in);
  CandidateOptions o;
  o.min_p = in.number("minP", 0.1);
  o.top_p = in.number("topP", 1.0);
  o.temperature = in.number("temperature", 1.0);
  if (paper) {
    // Every token with π_old ≥ P_min: at most ⌊1/P_min⌋ of them, plus slot 0 for the sampled token.
    if (!(o.min_p > 0)) invalid_argument("the paper candidate set needs minP > 0");
    const int64_t V = fused ? in.tensor("headWeight").size(0) : in.tensor("oldLogits").size(-1);
    o.k = std::min<int64_t>(static_cast<int64_t>(std::floor(1.0 / o.min_p)) + 1, V);
    o.strict = false;
    o.force_sampled = false;
    o.exclude_last = false;
  } else {
    o.k = in.integer("k", 5);
  }
  CandidateSet set = fused ? head_candidate_set(in.tensor("oldHidden"), in.tensor("headWeight"), in.tensor("tokens"), in.tensor("mask"), o,
                                                in.integer("chunkSize", 4096), head_lora(in))
                           : candidate_set(in.tensor("oldLogits"), in.tensor("tokens"), in.tensor("mask"), o);
  at::Tensor valid = in.tensor("mask").to(set.old_logprobs.device()).to(at::kBool);
  check_finite(set.old_logprobs.select(2, 0), valid, "oldLogits log-probs");
  ObjectiveOutputs out;
  out["candidateIndices"] = set.indices;
  out["oldTopkLogprobs"] = set.old_logprobs;
  out["candidateMask"] = set.mask;
  out["oldLogProb"] = set.old_logprobs.select(2, 0);
  return out;
}

// Positions t ≥ L_b − 1 of each row (the last response token and the padding after it).
at::Tensor from_last_position(const at::Tensor& mask) {
  at::Tensor L = mask.sum(1, /*keepdim=*/true);
  at::Tensor t = at::arange(mask.size(1), mask.options()).unsqueeze(0);
  return t >= (L - 1);
}

ObjectiveOutputs distrl_td(const ObjectiveInputs& in) {
  in.expect_only({"rmLogits", "rmHidden", "headWeight", "loraHidden", "loraWeight", "chunkSize", "rmTopkLogprobs", "candidateIndices",
                  "oldTopkLogprobs", "mask", "beta", "temperature", "zeroLast"});
  const at::Tensor& old_topk = in.tensor("oldTopkLogprobs");
  if (old_topk.dim() != 3) invalid_argument("oldTopkLogprobs must be [B, T, K]");
  at::Tensor rm_topk;
  at::ScalarType type;  // of the outputs
  if (in.has("rmTopkLogprobs")) {
    rm_topk = in.tensor("rmTopkLogprobs");
    type = rm_topk.scalar_type();
  } else if (in.has("rmHidden")) {
    // π_φ through the fused head, in float64 until the difference is taken (as below).
    const at::Tensor& indices = in.tensor("candidateIndices");
    if (indices.sizes() != old_topk.sizes()) invalid_argument("candidateIndices must have the shape of oldTopkLogprobs");
    at::NoGradGuard no_grad;
    const at::Tensor& hidden = in.tensor("rmHidden");
    type = acc_type(hidden.scalar_type());
    rm_topk = head_logprobs(hidden, in.tensor("headWeight"), indices, in.number("temperature", 1.0), in.integer("chunkSize", 4096), false,
                            at::kDouble, head_lora(in))
                  .logprobs;
  } else {
    const at::Tensor& indices = in.tensor("candidateIndices");
    if (indices.sizes() != old_topk.sizes()) invalid_argument("candidateIndices must have the shape of oldTopkLogprobs");
    const at::Tensor& rm_logits = in.tensor("rmLogits");
    check_logits(rm_logits, "rmLogits");
    type = acc_type(rm_logits.scalar_type());
    // In float64 until the difference is taken (see log_ratio in objectives.cc).
    rm_topk = gather_logprobs_nograd(rm_logits, indices, in.number("temperature", 1.0), at::kDouble);
  }
  if (rm_topk.sizes() != old_topk.sizes()) invalid_argument("rm and old candidate log-probs differ in shape");
  at::Tensor mask = float_mask(in, old_topk, {old_topk.size(0), old_topk.size(1)});
  at::Tensor td = (in.number("beta", 10.0) * (rm_topk - old_topk.to(rm_topk.scalar_type()))).to(type);
  rm_topk = rm_topk.to(type);
  if (in.boolean("zeroLast", true)) {
    // Reference: the last response token carries no TD; outcome information arrives through GRPO instead.
    td = td.masked_fill(from_last_position(mask).unsqueeze(2), 0.0);
  } else {
    td = td * mask.unsqueeze(2);
  }
  ObjectiveOutputs out;
  out["rmTopkLogprobs"] = rm_topk;
  out["candidateTd"] = td;
  out["stepRewards"] = td.select(2, 0);
  return out;
}

struct ClippedLoss {
  at::Tensor losses;   // per element
  at::Tensor clipped;  // l2 > l1 (the clip was active)
  at::Tensor lower;    // the reference's (always-false) lower-clip metric: c2 > −A·c with A < 0
  at::Tensor dual;     // the dual clip was active: c1 > −A·c with A < 0
};

// Dual-clip PPO on one ratio tensor: max(−Aρ, −A·clip(ρ, 1−lo, 1+hi)), then min(·, −A·c) where A < 0.
ClippedLoss dual_clip(const at::Tensor& ratio, const at::Tensor& A, double lo, double hi, double c, bool use_dual) {
  at::Tensor l1 = -A * ratio;
  at::Tensor l2 = -A * at::clamp(ratio, 1 - lo, 1 + hi);
  at::Tensor c1 = at::maximum(l1, l2);
  at::Tensor negative = A < 0;
  ClippedLoss out;
  out.clipped = (l2 > l1).to(A.scalar_type());
  if (!use_dual) {
    out.losses = c1;
    out.lower = at::zeros_like(A);
    out.dual = at::zeros_like(A);
    return out;
  }
  at::Tensor cap = -A * c;
  at::Tensor c2 = at::minimum(cap, c1);
  out.losses = at::where(negative, c2, c1);
  out.lower = at::logical_and(c2 > cap, negative).to(A.scalar_type());
  out.dual = at::logical_and(c1 > cap, negative).to(A.scalar_type());
  return out;
}

ObjectiveOutputs distrl_loss(const ObjectiveInputs& in) {
  in.expect_only({"newLogits", "inplaceBackward", "candidateIndices", "logProb", "policyTopkLogprobs", "oldLogProb", "oldTopkLogprobs",
                  "candidateMask", "advantages", "scaledCandidateTd", "mask", "clipRatioLow", "clipRatioHigh", "clipRatioC", "dualClip",
                  "cliprangeTopk", "alpha", "temperature", "conventions"});
  const bool paper = paper_convention(in);
  // π_θ log-probs: from logits with one fused gather (slot 0 is the sampled token), or given as tensors.
  at::Tensor log_prob, policy_topk;
  if (in.has("newLogits")) {
    policy_topk =
        gather_logprobs(in.tensor("newLogits"), in.tensor("candidateIndices"), in.number("temperature", 1.0), in.boolean("inplaceBackward", false));
    log_prob = policy_topk.select(2, 0);
  } else {
    log_prob = in.tensor("logProb");
    policy_topk = in.tensor("policyTopkLogprobs");
  }
  if (policy_topk.dim() != 3) invalid_argument("policy candidate log-probs must be [B, T, K], got " + c10::str(policy_topk.sizes()));
  const int64_t B = policy_topk.size(0), T = policy_topk.size(1);
  auto same_shape = [&](const char* key, at::IntArrayRef shape) {
    const at::Tensor& t = in.tensor(key);
    if (t.sizes() != shape) invalid_argument(std::string(key) + " has shape " + c10::str(t.sizes()) + ", expected " + c10::str(shape));
    return t.detach().to(policy_topk.scalar_type());
  };
  at::Tensor old_log_prob = same_shape("oldLogProb", {B, T});
  at::Tensor old_topk = same_shape("oldTopkLogprobs", policy_topk.sizes());
  at::Tensor cand = same_shape("candidateMask", policy_topk.sizes());
  at::Tensor A = same_shape("advantages", {B, T});
  at::Tensor A_cand = same_shape("scaledCandidateTd", policy_topk.sizes());
  at::Tensor mask = float_mask(in, policy_topk, {B, T});
  check_finite(log_prob, mask, "policy log-probs (logits)");
  // A NaN advantage would train on NaN silently (the masked mean turns it into a NaN loss at best).
  check_finite(A, mask, "advantages");
  check_finite(A_cand, cand * mask.unsqueeze(-1), "scaledCandidateTd");

  const double lo = in.number("clipRatioLow", 0.2), hi = in.number("clipRatioHigh", 0.28);
  const double c = in.number("clipRatioC", 3.0), alpha = in.number("alpha", 0.1);
  // Reference Dist-PPO clips symmetrically with the actor's clip_ratio; the paper uses ε_low/ε_high.
  const double topk_lo = paper ? lo : in.number("cliprangeTopk", 0.2), topk_hi = paper ? hi : in.number("cliprangeTopk", 0.2);
  if (!(lo >= 0 && hi >= 0 && c > 1)) invalid_argument("clip ratios must be ≥ 0 and clipRatioC > 1");
  // The dual clip is verl's (the IPVRM release's); the paper's objectives and the original PRIME repo have none.
  const bool dual = !paper && in.boolean("dualClip", true);

  // Tok-PPO on the sampled tokens.
  at::Tensor ratio = at::exp(log_prob - old_log_prob);
  ClippedLoss tok = dual_clip(ratio, A, lo, hi, c, dual);
  // Dist-PPO over the candidates, weighted by π_old.
  at::Tensor old_p = at::exp(old_topk);
  at::Tensor rho = at::exp(policy_topk - old_topk);
  ClippedLoss dist = dual_clip(rho, A_cand, topk_lo, topk_hi, c, dual);
  at::Tensor weight = old_p * cand;

  ObjectiveOutputs out;
  at::Tensor pg_loss, topk_pg_loss;
  if (paper) {
    // Eq. (11)-(12): per sequence (1/T)·Σ_t, then the mean over sequences.
    at::Tensor T_len = at::clamp_min(mask.sum(1), 1.0);
    pg_loss = ((tok.losses * mask).sum(1) / T_len).mean();
    topk_pg_loss = ((dist.losses * weight).sum({1, 2}) / T_len).mean();
  } else {
    pg_loss = masked_mean(tok.losses, mask);  // token-mean over the micro-batch
    at::Tensor weight_sum = weight.sum();
    // No candidate anywhere (e.g. all one-token responses): the Dist-PPO term is zero rather than 0/0.
    topk_pg_loss = weight_sum.item<double>() > 0 ? (dist.losses * weight).sum() / weight_sum : (dist.losses * weight).sum();
  }
  out["pgLoss"] = pg_loss;
  out["topkPgLoss"] = topk_pg_loss;
  out["loss"] = pg_loss + alpha * topk_pg_loss;
  out["pgLossesMat"] = tok.losses;
  out["topkPgLossesMat"] = dist.losses;
  out["logProb"] = log_prob;
  out["policyTopkLogprobs"] = policy_topk;
  // Metrics (no gradient).
  at::NoGradGuard no_grad;
  out["pgClipfrac"] = masked_mean(tok.clipped, mask).item<double>();
  out["ppoKl"] = masked_mean(old_log_prob - log_prob.detach(), mask).item<double>();
  out["pgClipfracLower"] = masked_mean(tok.lower, mask).item<double>();
  out["pgClipfracDual"] = masked_mean(tok.dual, mask).item<double>();
  out["topkPgClipfrac"] = masked_mean(dist.clipped, cand).item<double>();
  out["topkPpoKl"] = masked_mean(old_p * (old_topk - policy_topk.detach()), cand).item<double>();
  out["topkPgClipfracLower"] = masked_mean(dist.lower, cand).item<double>();
  out["topkPgClipfracDual"] = masked_mean(dist.dual, cand).item<double>();
  return out;
}

const ObjectiveRegistration registrations[] = {
    {"distrl_candidates", distrl_candidates},
    {"distrl_td", distrl_td},
    {"distrl_loss", distrl_loss},
};

}  // namespace
}  // namespace prefix_rl
