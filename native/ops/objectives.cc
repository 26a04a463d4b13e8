#include "ops/objectives.h"

#include <map>

#include "addon.h"
#include "async.h"
#include "common.h"
#include "ops/logprobs.h"

namespace prefix_rl {

static std::map<std::string, ObjectiveFn>& registry() {
  static std::map<std::string, ObjectiveFn> objectives;
  return objectives;
}

ObjectiveRegistration::ObjectiveRegistration(const char* name, ObjectiveFn fn) { registry()[name] = std::move(fn); }

at::Tensor float_mask(const ObjectiveInputs& in, const at::Tensor& like, const std::vector<int64_t>& shape) {
  const at::Tensor& mask = in.tensor("mask");
  if (mask.sizes() != at::IntArrayRef(shape)) {
    invalid_argument("mask has shape " + c10::str(mask.sizes()) + ", expected " + c10::str(at::IntArrayRef(shape)));
  }
  at::Tensor m = mask.to(like.device(), like.scalar_type());
  if (!(m.sum().item<double>() > 0)) invalid_argument("mask selects no position (an empty response mask)");
  return m;
}

LogRatio log_ratio(const ObjectiveInputs& in, const char* logits_key, const char* ref_logits_key, const char* ref_logprobs_key) {
  if (in.has("logRatio")) {
    const at::Tensor& ratio = in.tensor("logRatio");
    if (ratio.dim() != 2) invalid_argument("logRatio must be [B, T], got " + c10::str(ratio.sizes()));
    return {at::Tensor(), at::Tensor(), ratio};
  }
  const at::Tensor& logits = in.tensor(logits_key);
  check_logits(logits, logits_key);
  if (logits.dim() != 3) invalid_argument(std::string(logits_key) + " must be [B, T, V], got " + c10::str(logits.sizes()));
  const at::Tensor& tokens = in.tensor("tokens");
  check_tokens(tokens, logits, "tokens");
  at::Tensor index = tokens.unsqueeze(-1);
  // Both log-probs in float64, rounded once as their difference: they are ~−3 and their ratio ~0.1, so rounding each
  // to float32 first costs ~1e-7 per token, which β·Σ_t then multiplies in the sequence-level losses.
  const auto acc = acc_type(logits.scalar_type());
  at::Tensor policy = gather_logprobs(logits, index, 1.0, in.boolean("inplaceBackward", false), at::kDouble).squeeze(-1);
  at::Tensor ref;
  if (in.has(ref_logits_key)) {
    const at::Tensor& ref_logits = in.tensor(ref_logits_key);
    check_logits(ref_logits, ref_logits_key);
    if (ref_logits.sizes() != logits.sizes()) {
      invalid_argument(std::string(ref_logits_key) + " has shape " + c10::str(ref_logits.sizes()) + " but " + logits_key + " has " +
                       c10::str(logits.sizes()));
    }
    ref = gather_logprobs_nograd(ref_logits, index, 1.0, at::kDouble).squeeze(-1);
  } else if (in.has(ref_logprobs_key)) {
    ref = in.tensor(ref_logprobs_key).detach();
    if (ref.sizes() != tokens.sizes()) invalid_argument(std::string(ref_logprobs_key) + " must have the shape of tokens");
    ref = ref.to(policy.scalar_type());
  } else {
    invalid_argument(std::string("give ") + ref_logits_key + " or " + ref_logprobs_key + " (the reference policy)");
  }
  return {policy.to(acc), ref.to(acc), (policy - ref).to(acc)};
}

void check_finite(const at::Tensor& values, const at::Tensor& mask, const char* what) {
  at::Tensor bad = at::logical_and(at::logical_not(at::isfinite(values.detach())), mask.to(at::kBool));
  if (bad.any().item<bool>()) {
    at::Tensor where = bad.nonzero()[0].cpu();
    std::string position;
    for (int64_t i = 0; i < where.numel(); ++i) position += (i ? ", " : "") + std::to_string(where[i].item<int64_t>());
    invalid_argument(std::string(what) + " contain NaN or Inf (first at position [" + position + "])");
  }
}

at::Tensor masked_mean(const at::Tensor& x, const at::Tensor& mask) { return (x * mask).sum() / (mask.sum() + 1e-8); }

bool paper_convention(const ObjectiveInputs& in) {
  const std::string convention = in.string("conventions", "reference");
  if (convention != "reference" && convention != "paper") invalid_argument("conventions must be reference or paper, got '" + convention + "'");
  return convention == "paper";
}

at::Tensor row_labels(const ObjectiveInputs& in, const char* key, const at::Tensor& like, int64_t batch) {
  const at::Tensor& labels = in.tensor(key);
  if (labels.dim() != 1 || labels.size(0) != batch) {
    invalid_argument(std::string(key) + " must be [B] with B=" + std::to_string(batch) + ", got " + c10::str(labels.sizes()));
  }
  at::Tensor y = labels.to(like.device(), like.scalar_type());
  if (!at::isfinite(y).all().item<bool>()) invalid_argument(std::string(key) + " contain NaN or Inf");
  // Outcomes or probabilities: BCE and the group weights read them as such.
  if ((y < 0).any().item<bool>() || (y > 1).any().item<bool>())
    invalid_argument(std::string(key) + " must lie in [0, 1] (outcomes or probabilities)");
  return y;
}

// objective(name, inputs, cancel?) → Promise<{...outputs}>
static Napi::Value run_objective(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::string name = arg_string(info[0], "objective name");
    auto it = registry().find(name);
    if (it == registry().end()) invalid_argument("unknown objective '" + name + "'");
    ObjectiveInputs inputs = ObjectiveInputs::parse(name, info[1]);
    return run_async(info.Env(), info[2], [fn = it->second, inputs]() -> Completion {
      return [outputs = fn(inputs)](Napi::Env env) -> Napi::Value { return outputs_to_js(env, outputs); };
    });
  });
}

static Napi::Value list_objectives(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  uint32_t i = 0;
  for (const auto& [name, fn] : registry()) out.Set(i++, Napi::String::New(info.Env(), name));
  return out;
}

void register_objectives(Napi::Env env, Napi::Object exports) {
  exports.Set("objective", Napi::Function::New(env, run_objective, "objective"));
  exports.Set("listObjectives", Napi::Function::New(env, list_objectives, "listObjectives"));
}

}  // namespace prefix_rl
