#include "ops/head_logprobs.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common.h"
#include "ops/logprobs.h"

namespace prefix_rl {
namespace {

// The chunk [begin, end) of the vocabulary: its logits [N, end − begin] in the accumulation type, scaled.
at::Tensor chunk_logits(const at::Tensor& hidden, const at::Tensor& weight, int64_t begin, int64_t end, double scale, at::ScalarType acc) {
  at::Tensor logits = at::matmul(hidden, weight.narrow(0, begin, end - begin).t()).to(acc);
  return scale == 1.0 ? logits : logits.mul_(scale);
}

// For the index entries inside [begin, end): their column in the chunk and whether they fall in it.
std::pair<at::Tensor, at::Tensor> chunk_columns(const at::Tensor& index, int64_t begin, int64_t end) {
  at::Tensor inside = (index >= begin) & (index < end);
  return {(index - begin).clamp(0, end - begin - 1), inside};
}

class HeadLogprobsFn : public torch::autograd::Function<HeadLogprobsFn> {
 public:
  // hidden [N, H], weight [V, H], index [N, K] int64.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& index,
                            double temperature, int64_t chunk) {
    at::NoGradGuard no_grad;
    const int64_t N = hidden.size(0), V = weight.size(0);
    const auto acc = acc_type(hidden.scalar_type());
    const double scale = 1.0 / temperature;
    auto options = hidden.options().dtype(acc);
    at::Tensor max = at::full({N}, -std::numeric_limits<double>::infinity(), options);
    at::Tensor sum = at::zeros({N}, options);
    at::Tensor gathered = at::zeros(index.sizes(), options);
    for (int64_t begin = 0; begin < V; begin += chunk) {
      check_cancelled();
      const int64_t end = std::min(V, begin + chunk);
      at::Tensor logits = chunk_logits(hidden, weight, begin, end, scale, acc);
      // Online logsumexp: rescale the running sum to the new max (a row still at −inf keeps its sum, 0).
      at::Tensor new_max = at::maximum(max, std::get<0>(logits.max(1)));
      at::Tensor finite = at::isfinite(new_max);
      at::Tensor shift = at::where(finite, new_max, at::zeros_like(new_max));
      sum = sum * at::where(finite, at::exp(max - shift), at::zeros_like(max)) + at::exp(logits - shift.unsqueeze(1)).sum(1);
      max = new_max;
      auto [columns, inside] = chunk_columns(index, begin, end);
      gathered = at::where(inside, logits.gather(1, columns), gathered);
    }
    at::Tensor lse = at::where(at::isfinite(max), max + at::log(sum), max);
    ctx->save_for_backward({hidden, weight, index, lse});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk"] = chunk;
    return gathered - lse.unsqueeze(1);
  }

  // ∂L/∂z[n, v] = scale·(Σ_k g[n, k]·[v = index[n, k]] − (Σ_k g[n, k])·p[n, v]) per chunk, then
  // ∂L/∂hidden += ∂L/∂z · W_chunk and ∂L/∂W_chunk = ∂L/∂zᵀ · hidden.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &index = saved[2], &lse = saved[3];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const double scale = 1.0 / temperature;
    const int64_t V = weight.size(0);
    const auto acc = lse.scalar_type();
    at::Tensor g = grads[0].to(acc).contiguous();
    at::Tensor g_sum = g.sum(1, /*keepdim=*/true);
    const bool need_hidden = ctx->needs_input_grad(0), need_weight = ctx->needs_input_grad(1);
    at::Tensor grad_hidden = need_hidden ? at::zeros(hidden.sizes(), hidden.options().dtype(acc)) : at::Tensor();
    at::Tensor grad_weight = need_weight ? at::zeros(weight.sizes(), weight.options()) : at::Tensor();
    for (int64_t begin = 0; begin < V; begin += chunk) {
      check_cancelled();
      const int64_t end = std::min(V, begin + chunk);
      at::Tensor logits = chunk_logits(hidden, weight, begin, end, scale, acc);
      at::Tensor dz = at::exp(logits - lse.unsqueeze(1)).mul_(g_sum.neg());
      auto [columns, inside] = chunk_columns(index, begin, end);
      dz.scatter_add_(1, columns, at::where(inside, g, at::zeros_like(g)));
      dz.mul_(scale);
      at::Tensor dz_in = dz.to(hidden.scalar_type());
      if (need_hidden) grad_hidden.add_(at::matmul(dz_in, weight.narrow(0, begin, end - begin)).to(acc));
      if (need_weight) grad_weight.narrow(0, begin, end - begin).copy_(at::matmul(dz_in.t(), hidden));
    }
    return {need_hidden ? grad_hidden.to(hidden.scalar_type()) : at::Tensor(), grad_weight, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor head_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& index, double temperature, int64_t chunk) {
  if (!hidden.defined() || !weight.defined() || !index.defined()) invalid_argument("head_logprobs needs hidden, weight and index");
  if (!at::isFloatingType(hidden.scalar_type())) invalid_argument("hidden must be a floating tensor, got " + dtype_name(hidden.scalar_type()));
  if (hidden.dim() < 2) invalid_argument("hidden must have shape [..., H], got " + c10::str(hidden.sizes()));
  if (weight.dim() != 2 || weight.size(1) != hidden.size(-1)) {
    invalid_argument("weight must be [V, H] with H = " + std::to_string(hidden.size(-1)) + " (hidden's last dim), got " + c10::str(weight.sizes()));
  }
  if (weight.scalar_type() != hidden.scalar_type()) {
    invalid_argument("weight is " + dtype_name(weight.scalar_type()) + " but hidden is " + dtype_name(hidden.scalar_type()));
  }
  if (weight.size(0) == 0) invalid_argument("weight has an empty vocabulary (V = 0)");
  if (index.scalar_type() != at::kLong && index.scalar_type() != at::kInt) invalid_argument("index must be an int64 or int32 tensor");
  if (index.dim() != hidden.dim() || index.sizes().slice(0, index.dim() - 1) != hidden.sizes().slice(0, hidden.dim() - 1)) {
    invalid_argument("index has shape " + c10::str(index.sizes()) + "; it must be hidden's shape " + c10::str(hidden.sizes()) +
                     " with the last dim replaced by K");
  }
  check_same_device(weight, "weight", hidden, "hidden states");
  check_same_device(index, "index", hidden, "hidden states");
  if (!(temperature > 0) || !std::isfinite(temperature)) invalid_argument("temperature must be a finite number > 0");
  if (chunk < 1) invalid_argument("chunkSize must be a positive integer, got " + std::to_string(chunk));
  const int64_t V = weight.size(0), H = hidden.size(-1), K = index.size(-1);
  at::Tensor ids = index.reshape({-1, K}).to(at::kLong).contiguous();
  if (ids.numel() > 0) {
    auto [low, high] = at::aminmax(ids);
    at::Tensor bounds = at::stack({low, high}).cpu();
    const int64_t lo = bounds[0].item<int64_t>(), hi = bounds[1].item<int64_t>();
    if (lo < 0 || hi >= V) {
      invalid_argument("token index out of range: found " + std::to_string(lo < 0 ? lo : hi) + " for a vocabulary of " + std::to_string(V));
    }
  }
  at::Tensor out = HeadLogprobsFn::apply(hidden.reshape({-1, H}), weight, ids, temperature, chunk);
  return out.reshape(index.sizes());
}

}  // namespace prefix_rl
