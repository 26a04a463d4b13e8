// The objective registry: each fused objective is a named function from ObjectiveInputs to ObjectiveOutputs,
// run on the compute thread by `objective(name, inputs)`. Families live in rm_objectives.cc (reward models)
// and distrl_objectives.cc (DistRL candidates, TD and policy losses).
#pragma once

#include <functional>
#include <string>

#include "objective_io.h"
#include "ops/head_logprobs.h"

namespace prefix_rl {

using ObjectiveFn = std::function<ObjectiveOutputs(const ObjectiveInputs&)>;

struct ObjectiveRegistration {
  ObjectiveRegistration(const char* name, ObjectiveFn fn);
};

// Helpers shared by the families.

// Response mask as a float tensor of `like`'s dtype; checks the shape and that some position is valid.
at::Tensor float_mask(const ObjectiveInputs& in, const at::Tensor& like, const std::vector<int64_t>& shape);

// Policy/reference log-probs and their ratio at the sampled tokens:
//   logRatio given → used as is; otherwise logits (+ refLogits or refLogprobs) and tokens.
struct LogRatio {
  at::Tensor policy;  // log π_φ(y_t) (undefined when logRatio was given)
  at::Tensor ref;     // log π_ref(y_t)
  at::Tensor ratio;   // policy − ref, [B, T]
};
LogRatio log_ratio(const ObjectiveInputs& in, const char* logits_key = "logits", const char* ref_logits_key = "refLogits",
                   const char* ref_logprobs_key = "refLogprobs");

// Errors on NaN/Inf at valid positions of a [B, T] tensor derived from logits.
void check_finite(const at::Tensor& values, const at::Tensor& mask, const char* what);

// verl's masked_mean (sum(x·m) / (sum(m) + 1e-8)).
at::Tensor masked_mean(const at::Tensor& x, const at::Tensor& mask);

// The fused head's LoRA term from loraHidden and loraWeight (none when neither is given; head_logprobs checks them).
inline HeadLora head_lora(const ObjectiveInputs& in) { return {in.tensor_or_undefined("loraHidden"), in.tensor_or_undefined("loraWeight")}; }

// Whether `conventions` (reference, the default, or paper) asks for the paper's math; anything else is an error.
bool paper_convention(const ObjectiveInputs& in);

// Per-row labels [B] as a float tensor; checks shape and finiteness.
at::Tensor row_labels(const ObjectiveInputs& in, const char* key, const at::Tensor& like, int64_t batch);

}  // namespace prefix_rl
