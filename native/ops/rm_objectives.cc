// Reward-model objectives over implicit rewards lr_t = log π_φ(y_t) − log π_ref(y_t):
//   ipvrm_offline      prefix-value BCE with margin (reference token-mean; paper uniform / early / late weighting)
//   ipvrm_online       the online loss with ADB margins and DLW weights from prompt groups
//   implicit_prm_ce    Implicit PRM cross-entropy on β·Σ lr (BCE-with-logits, or PRIME's sigmoid + BCE)
//   implicit_prm_online  the same with online weights (BCE) or ADB margins
//   dpo_rm             Bradley-Terry on chosen/rejected rows (bt_sum = DPO-RM, bt_mean)
//   dpo_online         online DPO pairs: the first k positives against the first k negatives of each group
// Conventions follow ../shared/reference/implemented-math.md §1-2; gradients reach the logits through the fused
// gather_logprobs backward. Also here: prefix_values (no loss), and token_logprobs / token_entropy / head_logprobs,
// the fused primitives on their own.
#include <ATen/ATen.h>

#include <cmath>

#include "common.h"
#include "ops/head_logprobs.h"
#include "ops/logprobs.h"
#include "ops/objectives.h"

namespace prefix_rl {
namespace {

// Σ_t lr·mask per row.
at::Tensor sequence_sum(const at::Tensor& lr, const at::Tensor& mask) { return (lr * mask).sum(1); }

// Index of each row's last valid position (0 for a row without response tokens, whose v̄ is 0 there).
at::Tensor last_valid_index(const at::Tensor& mask) {
  const int64_t T = mask.size(1);
  at::Tensor positions = at::arange(T, mask.options().dtype(at::kLong)).expand_as(mask);
  return at::where(mask > 0, positions, at::zeros_like(positions)).amax(1);
}

void add_log_ratio_outputs(ObjectiveOutputs& out, const LogRatio& lr) {
  out["logRatio"] = lr.ratio;
  if (lr.policy.defined()) out["policyLogprobs"] = lr.policy;
  if (lr.ref.defined()) out["refLogprobs"] = lr.ref;
}

// ---- the prefix-value op (inference: ProcessBench, BoN, TD) ----

// V_t = β·Σ_{i≤t} lr_i and v̄_t = V_t / t over response tokens; no loss.
ObjectiveOutputs prefix_values(const ObjectiveInputs& in) {
  in.expect_only({"logits", "inplaceBackward", "refLogits", "refLogprobs", "logRatio", "tokens", "mask", "beta"});
  LogRatio lr = log_ratio(in);
  at::Tensor mask = float_mask(in, lr.ratio, lr.ratio.sizes().vec());
  check_finite(lr.ratio, mask, "log-probs (logits)");
  at::Tensor V = in.number("beta", 1.0) * at::cumsum(lr.ratio * mask, 1);
  at::Tensor vbar = V / at::clamp_min(at::cumsum(mask, 1), 1.0);
  ObjectiveOutputs out;
  add_log_ratio_outputs(out, lr);
  out["prefixValues"] = V;
  out["normalizedPrefixValues"] = vbar;
  out["finalScores"] = vbar.gather(1, last_valid_index(mask).unsqueeze(1)).squeeze(1);
  return out;
}

// log softmax(logits / temperature) at `index` ([..., K]), differentiable: the fused primitive on its own.
ObjectiveOutputs token_logprobs(const ObjectiveInputs& in) {
  in.expect_only({"logits", "inplaceBackward", "index", "temperature"});
  ObjectiveOutputs out;
  out["logprobs"] = gather_logprobs(in.tensor("logits"), in.tensor("index"), in.number("temperature", 1.0), in.boolean("inplaceBackward", false));
  return out;
}

// Entropy of softmax(logits / temperature) per position, differentiable (PPO's entropy bonus).
ObjectiveOutputs token_entropy_objective(const ObjectiveInputs& in) {
  in.expect_only({"logits", "temperature"});
  ObjectiveOutputs out;
  out["entropy"] = token_entropy(in.tensor("logits"), in.number("temperature", 1.0));
  return out;
}

// ---- IPVRM offline ----

ObjectiveOutputs ipvrm_offline(const ObjectiveInputs& in) {
  in.expect_only({"logits", "inplaceBackward", "refLogits", "refLogprobs", "logRatio", "tokens", "mask", "labels", "beta", "margin", "weighting"});
  LogRatio lr = log_ratio(in);
  const at::Tensor& ratio = lr.ratio;
  const int64_t B = ratio.size(0);
  at::Tensor mask = float_mask(in, ratio, ratio.sizes().vec());
  check_finite(ratio, mask, "log-probs (logits)");
  at::Tensor y = row_labels(in, "labels", ratio, B).unsqueeze(1);
  const double beta = in.number("beta", 1.0);
  const double margin = in.number("margin", 0.0);
  const std::string weighting = in.string("weighting", "token_mean");

  at::Tensor V = beta * at::cumsum(ratio * mask, 1);
  at::Tensor t_count = at::clamp_min(at::cumsum(mask, 1), 1.0);  // t counts response tokens, 1-based
  at::Tensor vbar = V / t_count;
  at::Tensor per_token = -(y * at::log_sigmoid(vbar - margin) + (1 - y) * at::log_sigmoid(-(vbar + margin)));

  ObjectiveOutputs out;
  if (weighting == "token_mean") {
    // Reference: one token-mean over the whole micro-batch.
    out["loss"] = (per_token * mask).sum() / at::clamp_min(mask.sum(), 1.0);
  } else if (weighting == "uniform" || weighting == "early" || weighting == "late") {
    // Paper eq. (9), (17), (18): a weighted mean per sequence over t = 1..T, then the mean over sequences.
    at::Tensor T_len = mask.sum(1, /*keepdim=*/true);
    // A row without response tokens has no prefixes: its mean over t = 1..T is 0/0.
    const at::Tensor empty = (T_len.squeeze(1) <= 0).nonzero();
    if (empty.size(0) > 0) {
      invalid_argument("the paper's weightings (" + weighting + ") need a response token in every row; row " +
                       std::to_string(empty[0][0].item<int64_t>()) + " has none");
    }
    at::Tensor w = weighting == "uniform" ? at::ones_like(t_count) : weighting == "late" ? t_count / T_len : 1 - t_count / T_len;
    w = w * mask;
    at::Tensor w_sum = w.sum(1);
    if (weighting == "early" && (w_sum <= 0).any().item<bool>()) {
      invalid_argument("early weighting needs at least 2 response tokens per sequence (its weight 1 - t/T is 0 at t = T)");
    }
    at::Tensor seq_loss = (w * per_token).sum(1) / w_sum;
    out["seqLoss"] = seq_loss;
    out["loss"] = seq_loss.mean();
  } else {
    invalid_argument("weighting must be token_mean (reference), uniform, early or late (paper), got '" + weighting + "'");
  }
  add_log_ratio_outputs(out, lr);
  out["prefixValues"] = V;
  out["normalizedPrefixValues"] = vbar;
  out["perTokenLoss"] = per_token;
  at::Tensor correct = at::eq((vbar > 0).to(y.scalar_type()), y.expand_as(vbar)).to(mask.scalar_type());
  out["prefixAccuracy"] = (correct * mask).sum() / mask.sum();
  // The reference reads v̄ at index L_b − 1, which is the last response token only when responses start at t = 0
  // (true in RL batches; with prompt-masked positions, as in offline data, it is an earlier prefix).
  at::Tensor reference_last = at::clamp_min(mask.sum(1) - 1, 0).to(at::kLong);
  out["finalScores"] = vbar.gather(1, reference_last.unsqueeze(1)).squeeze(1);
  out["lastScores"] = vbar.gather(1, last_valid_index(mask).unsqueeze(1)).squeeze(1);
  return out;
}

// ---- online groups: DLW weights and ADB margins ----

struct GroupTerms {
  at::Tensor weights;                        // [B]
  at::Tensor margins;                        // [B]
  std::vector<std::vector<int64_t>> groups;  // row indices of each group, in rank order
};

// Groups from `groupIds` (any ids, first-appearance order) or contiguous blocks of `groupSize`; members sorted by
// `sampleRank` when given.
std::vector<std::vector<int64_t>> prompt_groups(const ObjectiveInputs& in, int64_t B) {
  std::vector<std::vector<int64_t>> groups;
  if (in.has("groupIds")) {
    at::Tensor ids = in.tensor("groupIds").to(at::kLong).cpu().contiguous();
    if (ids.dim() != 1 || ids.size(0) != B) invalid_argument("groupIds must be [B]");
    std::map<int64_t, size_t> slot;
    for (int64_t b = 0; b < B; ++b) {
      int64_t id = ids[b].item<int64_t>();
      auto [it, inserted] = slot.emplace(id, groups.size());
      if (inserted) groups.emplace_back();
      groups[it->second].push_back(b);
    }
  } else {
    const int64_t n = in.integer("groupSize", 0);
    if (n < 1 || B % n != 0) invalid_argument("give groupIds, or groupSize n ≥ 1 dividing the batch (B=" + std::to_string(B) + ")");
    for (int64_t g = 0; g < B / n; ++g) {
      groups.emplace_back();
      for (int64_t i = 0; i < n; ++i) groups.back().push_back(g * n + i);
    }
  }
  if (in.has("sampleRank")) {
    at::Tensor rank = in.tensor("sampleRank").to(at::kLong).cpu().contiguous();
    if (rank.dim() != 1 || rank.size(0) != B) invalid_argument("sampleRank must be [B]");
    const int64_t* r = rank.data_ptr<int64_t>();
    for (auto& group : groups) std::stable_sort(group.begin(), group.end(), [&](int64_t a, int64_t b) { return r[a] < r[b]; });
  }
  return groups;
}

// DLW weights and ADB margins per row from its prompt group. A group with one outcome teaches the RM nothing about
// telling outcomes apart: the reference gives it weight 0; `trainUniformGroups` keeps it at weight 1 and margin m
// (an ablation: the RM then learns from every sample).
GroupTerms group_terms(const ObjectiveInputs& in, const at::Tensor& acc, bool use_adb, bool use_dlw, double m) {
  const bool train_uniform = in.boolean("trainUniformGroups", false);
  const bool paper = paper_convention(in);
  const int64_t B = acc.size(0);
  GroupTerms terms;
  terms.groups = prompt_groups(in, B);
  at::Tensor acc_cpu = acc.detach().to(at::kCPU, at::kDouble).contiguous();
  const double* a = acc_cpu.data_ptr<double>();
  std::vector<double> w(B, 1.0), margin(B, m);
  for (const auto& group : terms.groups) {
    const double n = static_cast<double>(group.size());
    double mu = 0;
    for (int64_t b : group) mu += a[b];
    mu /= n;
    bool all_same = true;
    for (int64_t b : group) all_same = all_same && (a[b] > 0.5) == (a[group[0]] > 0.5);
    if (all_same) {
      for (int64_t b : group) w[b] = train_uniform ? 1 : 0, margin[b] = m;
      continue;
    }
    if (use_dlw) {
      double total = 0;
      for (int64_t b : group) total += (w[b] = a[b] > 0.5 ? 1 - mu : mu);
      // The reference rescales to Σw = n, so each outcome class carries weight n/2; the paper (§3.3) keeps 1 − μ and μ.
      if (!paper) {
        for (int64_t b : group) w[b] = w[b] * n / total;
      }
    }
    if (use_adb) {
      const double p = std::min(std::max(mu, 1e-6), 1 - 1e-6);
      const double boundary = std::log(p / (1 - p));
      for (int64_t b : group) margin[b] = a[b] > 0.5 ? m - boundary : m + boundary;
    }
  }
  auto options = at::TensorOptions().dtype(at::kDouble);
  terms.weights = at::tensor(w, options).to(acc.device(), acc.scalar_type());
  terms.margins = at::tensor(margin, options).to(acc.device(), acc.scalar_type());
  return terms;
}

ObjectiveOutputs ipvrm_online(const ObjectiveInputs& in) {
  in.expect_only({"logits", "inplaceBackward", "refLogits", "refLogprobs", "logRatio", "tokens", "mask", "acc", "groupIds", "groupSize", "sampleRank",
                  "beta", "margin", "useAdb", "useDlw", "trainUniformGroups", "conventions"});
  LogRatio lr = log_ratio(in);
  const at::Tensor& ratio = lr.ratio;
  const int64_t B = ratio.size(0);
  at::Tensor mask = float_mask(in, ratio, ratio.sizes().vec());
  check_finite(ratio, mask, "log-probs (logits)");
  at::Tensor acc = row_labels(in, "acc", ratio, B);
  const double beta = in.number("beta", 10.0);
  GroupTerms terms = group_terms(in, acc, in.boolean("useAdb", true), in.boolean("useDlw", true), in.number("margin", 5.0));

  // s = 2·acc − 1, as the reference writes it: ±1 for verifier outcomes, a fractional reward's own weight otherwise.
  at::Tensor sign = (2 * acc - 1).unsqueeze(1);
  at::Tensor prefix_mean = at::cumsum(sign * ratio * mask, 1) / at::clamp_min(at::cumsum(mask, 1), 1.0);
  at::Tensor z = beta * prefix_mean - terms.margins.unsqueeze(1);  // margin not signed: symmetric boundaries
  at::Tensor per_token = -at::log_sigmoid(z);
  at::Tensor loss_per_seq = (per_token * mask).sum(1) / at::clamp_min(mask.sum(1), 1.0);

  ObjectiveOutputs out;
  out["loss"] = (loss_per_seq * terms.weights).mean();  // mean over all rows, zero-weight rows included
  out["lossPerSeq"] = loss_per_seq;
  out["weights"] = terms.weights;
  out["margins"] = terms.margins;
  out["logitsPerToken"] = z;
  add_log_ratio_outputs(out, lr);
  out["logRatio"] = ratio * mask;  // the online code masks the ratio before use
  return out;
}

// ---- Implicit PRM ----

ObjectiveOutputs implicit_prm_ce(const ObjectiveInputs& in) {
  in.expect_only({"logits", "inplaceBackward", "refLogits", "refLogprobs", "logRatio", "tokens", "mask", "labels", "beta", "form"});
  LogRatio lr = log_ratio(in);
  at::Tensor mask = float_mask(in, lr.ratio, lr.ratio.sizes().vec());
  check_finite(lr.ratio, mask, "log-probs (logits)");
  at::Tensor y = row_labels(in, "labels", lr.ratio, lr.ratio.size(0));
  at::Tensor z = in.number("beta", 0.05) * sequence_sum(lr.ratio, mask);
  const std::string form = in.string("form", "bce_logits");
  ObjectiveOutputs out;
  if (form == "bce_logits")
    out["loss"] = at::binary_cross_entropy_with_logits(z, y);
  else if (form == "prime")
    out["loss"] = at::binary_cross_entropy(at::sigmoid(z), y);  // log clamped at −100
  else
    invalid_argument("form must be bce_logits (IPVRM, ImplicitPRM) or prime (PRIME's sigmoid + BCE), got '" + form + "'");
  out["seqLogits"] = z;
  add_log_ratio_outputs(out, lr);
  return out;
}

ObjectiveOutputs implicit_prm_online(const ObjectiveInputs& in) {
  in.expect_only({"logits", "inplaceBackward", "refLogits", "refLogprobs", "logRatio", "tokens", "mask", "acc", "groupIds", "groupSize", "sampleRank",
                  "beta", "margin", "useAdb", "useDlw", "trainUniformGroups", "form", "conventions"});
  LogRatio lr = log_ratio(in);
  at::Tensor mask = float_mask(in, lr.ratio, lr.ratio.sizes().vec());
  check_finite(lr.ratio, mask, "log-probs (logits)");
  at::Tensor acc = row_labels(in, "acc", lr.ratio, lr.ratio.size(0));
  GroupTerms terms = group_terms(in, acc, in.boolean("useAdb", true), in.boolean("useDlw", true), in.number("margin", 5.0));
  at::Tensor z = in.number("beta", 10.0) * sequence_sum(lr.ratio, mask);
  const std::string form = in.string("form", "bce");
  at::Tensor per_seq;
  if (form == "bce") {
    per_seq = at::binary_cross_entropy_with_logits(z, acc, {}, {}, at::Reduction::None);  // the outcome itself is the target
  } else if (form == "adb") {
    per_seq = -at::log_sigmoid(z * (2 * acc - 1) - terms.margins);
  } else {
    invalid_argument("form must be bce or adb, got '" + form + "'");
  }
  ObjectiveOutputs out;
  out["loss"] = (per_seq * terms.weights).mean();
  out["seqLogits"] = z;
  out["weights"] = terms.weights;
  out["margins"] = terms.margins;
  add_log_ratio_outputs(out, lr);
  return out;
}

// ---- DPO-RM ----

ObjectiveOutputs dpo_rm(const ObjectiveInputs& in) {
  in.expect_only({"logits", "inplaceBackward", "refLogits", "refLogprobs", "logRatio", "tokens", "mask", "beta", "gamma", "reduction"});
  LogRatio lr = log_ratio(in);
  const int64_t B = lr.ratio.size(0);
  if (B % 2 != 0) invalid_argument("dpo_rm needs rows [0, P) chosen and [P, 2P) rejected: B must be even, got " + std::to_string(B));
  at::Tensor mask = float_mask(in, lr.ratio, lr.ratio.sizes().vec());
  check_finite(lr.ratio, mask, "log-probs (logits)");
  const std::string reduction = in.string("reduction", "sum");
  at::Tensor seq = sequence_sum(lr.ratio, mask);
  if (reduction == "mean")
    seq = seq / at::clamp_min(mask.sum(1), 1.0);
  else if (reduction != "sum")
    invalid_argument("reduction must be sum (bt_sum, DPO-RM) or mean (bt_mean), got '" + reduction + "'");
  const int64_t P = B / 2;
  at::Tensor pair_logits = in.number("beta", 0.05) * (seq.slice(0, 0, P) - seq.slice(0, P, B)) - in.number("gamma", 0.0);
  ObjectiveOutputs out;
  out["loss"] = at::softplus(-pair_logits).mean();
  out["pairLogits"] = pair_logits;
  out["seqRewards"] = seq;
  add_log_ratio_outputs(out, lr);
  return out;
}

ObjectiveOutputs dpo_online(const ObjectiveInputs& in) {
  in.expect_only(
      {"logits", "inplaceBackward", "refLogits", "refLogprobs", "logRatio", "tokens", "mask", "acc", "groupIds", "groupSize", "sampleRank", "beta"});
  LogRatio lr = log_ratio(in);
  const int64_t B = lr.ratio.size(0);
  at::Tensor mask = float_mask(in, lr.ratio, lr.ratio.sizes().vec());
  check_finite(lr.ratio, mask, "log-probs (logits)");
  at::Tensor acc = row_labels(in, "acc", lr.ratio, B).cpu();
  std::vector<int64_t> chosen, rejected;
  for (const auto& group : prompt_groups(in, B)) {
    std::vector<int64_t> pos, neg;
    for (int64_t b : group) {
      // As the reference pairs them: an outcome of exactly 0.5 is neither correct nor incorrect.
      const double a = acc[b].item<double>();
      if (a > 0.5) pos.push_back(b);
      if (a < 0.5) neg.push_back(b);
    }
    for (size_t i = 0; i < std::min(pos.size(), neg.size()); ++i) chosen.push_back(pos[i]), rejected.push_back(neg[i]);
  }
  auto ids = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(lr.ratio.device()); };
  at::Tensor seq = sequence_sum(lr.ratio, mask);
  ObjectiveOutputs out;
  out["chosenIdx"] = ids(chosen);
  out["rejectedIdx"] = ids(rejected);
  if (chosen.empty()) {  // no mixed group: nothing to learn, and a zero loss that still backpropagates
    out["pairLogits"] = at::zeros({0}, seq.options());
    out["lossSum"] = seq.sum() * 0;
    out["loss"] = seq.sum() * 0;
  } else {
    at::Tensor pair_logits = in.number("beta", 10.0) * (seq.index_select(0, ids(chosen)) - seq.index_select(0, ids(rejected)));
    at::Tensor loss_sum = -at::log_sigmoid(pair_logits).sum();
    out["pairLogits"] = pair_logits;
    out["lossSum"] = loss_sum;
    out["loss"] = loss_sum / static_cast<double>(chosen.size());
  }
  add_log_ratio_outputs(out, lr);
  return out;
}

// The fused LM head: log-probs at `index` from hidden states [..., H] and the head's weight [V, H], streamed over
// `chunkSize` vocabulary rows at a time (no [N, V] logits), differentiable w.r.t. hidden and weight (and a LoRA's
// loraHidden and loraWeight); with `entropy` also the token entropy [...] from the same pass (`entropyGradient`
// false: its gradient will not be taken, which spares a frozen head the backward's recompute); `float64` returns
// the log-probs unrounded to float32.
ObjectiveOutputs head_logprobs_objective(const ObjectiveInputs& in) {
  in.expect_only({"hidden", "weight", "loraHidden", "loraWeight", "index", "temperature", "chunkSize", "entropy", "entropyGradient", "float64"});
  const bool entropy = in.boolean("entropy", false);
  HeadLogprobs head = head_logprobs(in.tensor("hidden"), in.tensor("weight"), in.tensor("index"), in.number("temperature", 1.0),
                                    in.integer("chunkSize", 4096), entropy, in.boolean("float64", false) ? std::optional(at::kDouble) : std::nullopt,
                                    head_lora(in), in.boolean("entropyGradient", true));
  ObjectiveOutputs out;
  out["logprobs"] = head.logprobs;
  if (entropy) out["entropy"] = head.entropy;
  return out;
}

const ObjectiveRegistration registrations[] = {
    {"prefix_values", prefix_values},
    {"token_logprobs", token_logprobs},
    {"head_logprobs", head_logprobs_objective},
    {"token_entropy", token_entropy_objective},
    {"ipvrm_offline", ipvrm_offline},
    {"ipvrm_online", ipvrm_online},
    {"implicit_prm_ce", implicit_prm_ce},
    {"implicit_prm_online", implicit_prm_online},
    {"dpo_rm", dpo_rm},
    {"dpo_online", dpo_online},
};

}  // namespace
}  // namespace prefix_rl
