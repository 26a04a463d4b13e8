#include "model/generate.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "common.h"

namespace prefix_rl {

namespace {

void check_options(const SamplingOptions& o, int64_t vocab) {
  if (o.max_new_tokens < 1) invalid_argument("maxNewTokens must be at least 1, got " + std::to_string(o.max_new_tokens));
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature)) invalid_argument("temperature must be a finite number >= 0");
  if (o.top_k < 0) invalid_argument("topK must be >= 0 (0 = off)");
  if (!(o.top_p > 0 && o.top_p <= 1)) invalid_argument("topP must be in (0, 1] (1 = off)");
  if (o.top_logprobs < 0 || o.top_logprobs > vocab) invalid_argument("topLogprobs must be in [0, " + std::to_string(vocab) + "]");
  auto check_token = [&](int64_t token, const char* what) {
    if (token < 0 || token >= vocab)
      invalid_argument(std::string(what) + " holds token " + std::to_string(token) + ", outside [0, " + std::to_string(vocab) + ")");
  };
  for (int64_t token : o.eos_token_ids) check_token(token, "eosTokenIds");
  for (const auto& sequence : o.stop_sequences) {
    if (sequence.empty()) invalid_argument("stopSequences must not hold an empty sequence");
    for (int64_t token : sequence) check_token(token, "stopSequences");
  }
}

struct Step {
  at::Tensor tokens;                    // [B] int64
  at::Tensor logprobs;                  // [B] float32
  at::Tensor top_logprobs, top_tokens;  // [B, K], when asked for
};

// Picks every row's next token from its last-position logits [B, V].
Step sample(const at::Tensor& logits, const SamplingOptions& o, at::Generator& generator) {
  const bool greedy = o.temperature == 0;
  const int64_t vocab = logits.size(-1);
  const double minus_infinity = -std::numeric_limits<double>::infinity();
  at::Tensor scaled = greedy ? logits.to(at::kFloat) : logits.to(at::kFloat) / o.temperature;
  // The reported log-probs are of the tempered distribution before top-k/top-p truncation: what a trainer recomputes.
  at::Tensor logprobs = at::log_softmax(scaled, -1);
  Step step;
  if (greedy) {
    step.tokens = scaled.argmax(-1);
  } else {
    at::Tensor kept = scaled;
    if (o.top_k > 0 && o.top_k < vocab) {
      at::Tensor kth = std::get<0>(scaled.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);
      kept = kept.masked_fill(kept < kth, minus_infinity);
    }
    if (o.top_p < 1) {
      // Nucleus: the most likely tokens until their mass reaches top_p; the first one always stays.
      auto [sorted, order] = kept.sort(-1, /*descending=*/true);
      at::Tensor probs = at::softmax(sorted, -1);
      at::Tensor mass_before = probs.cumsum(-1) - probs;
      kept = kept.scatter(-1, order, sorted.masked_fill(mass_before >= o.top_p, minus_infinity));
    }
    // Inverse-CDF sampling with one uniform per row from a seeded CPU generator, so the draws do not depend on the
    // device. Scaling the uniform by the total keeps it inside the CDF despite rounding; zero-probability tokens
    // (flat CDF steps) are never the first entry above it.
    at::Tensor cdf = at::softmax(kept.to(at::kDouble), -1).cumsum(-1);
    at::Tensor uniform = at::rand({logits.size(0)}, generator, at::TensorOptions().dtype(at::kDouble)).to(logits.device());
    at::Tensor target = (uniform * cdf.select(-1, vocab - 1)).unsqueeze(-1);
    step.tokens = at::searchsorted(cdf, target, /*out_int32=*/false, /*right=*/true).squeeze(-1).clamp_max(vocab - 1);
  }
  step.logprobs = logprobs.gather(-1, step.tokens.unsqueeze(-1)).squeeze(-1);
  if (o.top_logprobs > 0) std::tie(step.top_logprobs, step.top_tokens) = logprobs.topk(o.top_logprobs, -1);
  return step;
}

bool ends_with(const std::vector<int64_t>& tokens, const std::vector<int64_t>& suffix) {
  return tokens.size() >= suffix.size() && std::equal(suffix.rbegin(), suffix.rend(), tokens.rbegin());
}

}  // namespace

Generation generate(const Decoder& model, const at::Tensor& prompt_ids, const at::Tensor& prompt_mask, const SamplingOptions& o) {
  at::NoGradGuard no_grad;
  check_options(o, model.config().vocab_size);
  auto [ids, mask] = model.prepare(prompt_ids, prompt_mask);
  const int64_t batch = ids.size(0), prompt_length = ids.size(1);
  // Left padding puts every row's next token in the same column: one cache position per step serves the batch.
  bool left_padded = mask.select(1, prompt_length - 1).all().item<bool>() &&
                     (mask.narrow(1, 1, prompt_length - 1).to(at::kByte) >= mask.narrow(1, 0, prompt_length - 1).to(at::kByte)).all().item<bool>();
  if (!left_padded) invalid_argument("prompts must be left-padded: each row's tokens must end in the last column");

  KvCache cache = model.new_cache(batch, prompt_length + o.max_new_tokens);
  at::Tensor logits = model.extend(cache, ids, (mask.cumsum(-1) - 1).clamp_min(0), mask);
  at::Tensor next_position = mask.sum(-1, /*keepdim=*/true);  // [B, 1]: a row's new token follows its tokens
  at::Tensor one_token = at::ones({batch, 1}, mask.options());
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);

  std::vector<std::vector<int64_t>> produced(batch);
  std::vector<FinishReason> reasons(batch, FinishReason::Length);
  std::vector<bool> done(batch, false);
  std::vector<at::Tensor> tokens, logprobs, top_tokens, top_logprobs;
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    check_cancelled();
    Step next = sample(logits, o, generator);
    at::Tensor chosen = next.tokens.cpu();
    tokens.push_back(chosen);
    logprobs.push_back(next.logprobs.cpu());
    if (o.top_logprobs > 0) {
      top_tokens.push_back(next.top_tokens.cpu());
      top_logprobs.push_back(next.top_logprobs.cpu());
    }
    const int64_t* token = chosen.data_ptr<int64_t>();
    if (o.on_step) {
      const at::Tensor step_logprobs = logprobs.back().to(at::kFloat).contiguous();
      std::vector<uint8_t> active(batch);
      for (int64_t b = 0; b < batch; ++b) active[b] = done[b] ? 0 : 1;
      o.on_step(std::vector<int64_t>(token, token + batch),
                std::vector<float>(step_logprobs.data_ptr<float>(), step_logprobs.data_ptr<float>() + batch), active);
    }
    bool all_done = true;
    for (int64_t b = 0; b < batch; ++b) {
      if (done[b]) continue;
      produced[b].push_back(token[b]);
      if (std::find(o.eos_token_ids.begin(), o.eos_token_ids.end(), token[b]) != o.eos_token_ids.end()) {
        done[b] = true;
        reasons[b] = FinishReason::Eos;
      } else if (std::any_of(o.stop_sequences.begin(), o.stop_sequences.end(), [&](const auto& stop) { return ends_with(produced[b], stop); })) {
        done[b] = true;
        reasons[b] = FinishReason::Stop;
      }
      all_done = all_done && done[b];
    }
    if (all_done || step + 1 == o.max_new_tokens) break;
    // Finished rows keep decoding (the batch moves together); what they produce is masked out below.
    logits = model.extend(cache, next.tokens.unsqueeze(1), next_position, one_token);
    next_position += 1;
  }

  Generation out;
  std::vector<int64_t> lengths, reason_codes;
  for (int64_t b = 0; b < batch; ++b) {
    lengths.push_back(static_cast<int64_t>(produced[b].size()));
    reason_codes.push_back(static_cast<int64_t>(reasons[b]));
  }
  out.lengths = at::tensor(lengths, at::kLong);
  out.finish_reasons = at::tensor(reason_codes, at::kLong);
  at::Tensor past_end = at::arange(static_cast<int64_t>(tokens.size())).unsqueeze(0) >= out.lengths.unsqueeze(1);  // [B, N]
  out.tokens = at::stack(tokens, 1).masked_fill(past_end, 0);
  out.logprobs = at::stack(logprobs, 1).masked_fill(past_end, 0.0);
  if (o.top_logprobs > 0) {
    out.top_tokens = at::stack(top_tokens, 1).masked_fill(past_end.unsqueeze(-1), 0);
    out.top_logprobs = at::stack(top_logprobs, 1).masked_fill(past_end.unsqueeze(-1), 0.0);
  }
  return out;
}

}  // namespace prefix_rl
