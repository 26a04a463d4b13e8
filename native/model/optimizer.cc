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
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const at::Tensor& parameter = parameters_[i];
    const at::Tensor& grad = parameter.grad();
    if (!grad.defined()) continue;
    check_cancelled();
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
