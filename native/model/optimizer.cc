#include "model/optimizer.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

#include "common.h"

namespace prefix_rl {

AdamW::AdamW(std::vector<at::Tensor> parameters, const AdamWOptions& options)
    : parameters_(std::move(parameters)),
      exp_avg_(parameters_.size()),
      exp_avg_sq_(parameters_.size()),
      steps_(parameters_.size(), 0),
      options_(options) {
  if (parameters_.empty()) invalid_argument("AdamW needs at least one parameter");
  for (const at::Tensor& p : parameters_) {
    if (!at::isFloatingType(p.scalar_type())) invalid_argument("AdamW parameters must be floating point, got " + dtype_name(p.scalar_type()));
  }
  if (!(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1)) invalid_argument("AdamW betas must lie in [0, 1)");
  if (!(options.eps > 0)) invalid_argument("AdamW eps must be positive");
  if (!(options.weight_decay >= 0)) invalid_argument("AdamW weightDecay must be >= 0");
}

void AdamW::step(double lr) {
  if (!(lr >= 0) || !std::isfinite(lr)) invalid_argument("learning rate must be a finite number >= 0, got " + std::to_string(lr));
  at::NoGradGuard no_grad;
  // A cancel is honoured before the first update only: a step stopped halfway would leave some parameters (and their
  // moments and counts) a step ahead of the others, a state no resume could undo.
  check_cancelled();
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const at::Tensor& parameter = parameters_[i];
    const at::Tensor& grad = parameter.grad();
    if (!grad.defined()) continue;
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = at::zeros_like(parameter, at::kFloat);
      exp_avg_sq_[i] = at::zeros_like(parameter, at::kFloat);
    }
    const int64_t step = ++steps_[i];
    // For a float32 parameter this is the parameter itself, updated in place.
    at::Tensor value = parameter.to(at::kFloat);
    at::Tensor g = grad.to(at::kFloat);
    value.mul_(1 - lr * options_.weight_decay);
    exp_avg_[i].lerp_(g, 1 - options_.beta1);
    exp_avg_sq_[i].mul_(options_.beta2).addcmul_(g, g, 1 - options_.beta2);
    const double bias_correction1 = 1 - std::pow(options_.beta1, static_cast<double>(step));
    const double bias_correction2 = 1 - std::pow(options_.beta2, static_cast<double>(step));
    at::Tensor denominator = (exp_avg_sq_[i].sqrt() / std::sqrt(bias_correction2)).add_(options_.eps);
    value.addcdiv_(exp_avg_[i], denominator, -lr / bias_correction1);
    if (!value.is_same(parameter)) parameter.copy_(value);
  }
  ++steps_taken_;
}

AdamW::State AdamW::state() const {
  at::NoGradGuard no_grad;
  State out;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const bool started = exp_avg_[i].defined();
    out.exp_avg.push_back(started ? exp_avg_[i].clone() : at::zeros_like(parameters_[i], at::kFloat));
    out.exp_avg_sq.push_back(started ? exp_avg_sq_[i].clone() : at::zeros_like(parameters_[i], at::kFloat));
  }
  out.steps = steps_;
  out.steps_taken = steps_taken_;
  return out;
}

void AdamW::load_state(const State& state) {
  const size_t n = parameters_.size();
  if (state.exp_avg.size() != n || state.exp_avg_sq.size() != n || state.steps.size() != n) {
    invalid_argument("AdamW state: expected " + std::to_string(n) + " parameters' moments and step counts, got " +
                     std::to_string(state.exp_avg.size()) + "/" + std::to_string(state.exp_avg_sq.size()) + "/" + std::to_string(state.steps.size()));
  }
  if (state.steps_taken < 0) invalid_argument("AdamW state: a negative step count");
  for (size_t i = 0; i < n; ++i) {
    for (const at::Tensor* moment : {&state.exp_avg[i], &state.exp_avg_sq[i]}) {
      if (moment->sizes() != parameters_[i].sizes()) {
        invalid_argument("AdamW state: parameter " + std::to_string(i) + " has shape " + c10::str(parameters_[i].sizes()) +
                         " but its saved moment has shape " + c10::str(moment->sizes()));
      }
      if (moment->scalar_type() != at::kFloat) invalid_argument("AdamW state: moments must be float32, got " + dtype_name(moment->scalar_type()));
    }
    if (state.steps[i] < 0) invalid_argument("AdamW state: a negative step count");
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < n; ++i) {
    steps_[i] = state.steps[i];
    // A parameter never updated keeps no moments, as before the save.
    exp_avg_[i] = state.steps[i] > 0 ? state.exp_avg[i].to(parameters_[i].device(), at::kFloat, false, true) : at::Tensor();
    exp_avg_sq_[i] = state.steps[i] > 0 ? state.exp_avg_sq[i].to(parameters_[i].device(), at::kFloat, false, true) : at::Tensor();
  }
  steps_taken_ = state.steps_taken;
}

void AdamW::zero_grad() {
  for (const at::Tensor& parameter : parameters_) parameter.mutable_grad().reset();
}

double clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm) {
  if (!(max_norm > 0)) invalid_argument("maxNorm must be positive");
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const at::Tensor& p : parameters) {
    if (p.grad().defined()) norms.push_back(at::linalg_vector_norm(p.grad().to(at::kFloat), 2));
  }
  if (norms.empty()) return 0.0;
  const double total = at::linalg_vector_norm(at::stack(norms), 2).item<double>();
  // The 1e-6 keeps the clipped norm just under max_norm, as PyTorch does.
  const double scale = max_norm / (total + 1e-6);
  if (std::isfinite(total) && scale < 1) {
    for (const at::Tensor& p : parameters) {
      if (p.grad().defined()) p.mutable_grad().mul_(scale);
    }
  }
  return total;
}

}  // namespace prefix_rl
