// AdamW (decoupled weight decay) and gradient-norm clipping over a list of parameter tensors, with the update rule
// of torch.optim.AdamW (amsgrad off). Runs on the compute thread like every other weight update.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace prefix_rl {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

class AdamW {
 public:
  AdamW(std::vector<at::Tensor> parameters, const AdamWOptions& options);

  // One update at learning rate `lr` of every parameter that has a gradient (the others keep their state and step
  // count, as in PyTorch). Moments are float32 whatever the parameter dtype; a bf16/fp16 parameter is updated in
  // float32 and rounded back.
  void step(double lr);
  // Drops the gradients (PyTorch's zero_grad(set_to_none=True)): the next backward writes them afresh.
  void zero_grad();
  int64_t steps() const { return steps_taken_; }

  // The optimizer state, copied: per parameter its moments (zeros before its first update) and update count, and
  // the number of step() calls. load_state() restores it exactly, so a resumed run continues bit for bit.
  struct State {
    std::vector<at::Tensor> exp_avg, exp_avg_sq;
    std::vector<int64_t> steps;
    int64_t steps_taken = 0;
  };
  State state() const;
  void load_state(const State& state);

 private:
  std::vector<at::Tensor> parameters_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;  // allocated at a parameter's first update
  std::vector<int64_t> steps_;                    // per parameter
  int64_t steps_taken_ = 0;
  AdamWOptions options_;
};

// Scales the gradients so that their global L2 norm is at most `max_norm`, as torch.nn.utils.clip_grad_norm_ does;
// returns the norm before clipping (NaN or Inf when a gradient is not finite, in which case nothing is scaled).
double clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm);

}  // namespace prefix_rl
