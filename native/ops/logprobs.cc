#include "logprobs.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common.h"
#include "ops/buffer_cache.h"
#include "ops/parallel_rows.h"
#include "ops/row_kernels.h"

#include "ops/cuda_launch.h"

namespace prefix_rl {

using kernels::acc_t;

void check_logits(const at::Tensor& logits, const char* name) {
  if (!logits.defined()) invalid_argument(std::string(name) + " is required");
  if (!at::isFloatingType(logits.scalar_type())) {
    invalid_argument(std::string(name) + " must be a floating tensor (float32, float64, bfloat16, float16), got " + dtype_name(logits.scalar_type()));
  }
  if (logits.dim() < 2) invalid_argument(std::string(name) + " must have shape [..., V], got " + c10::str(logits.sizes()));
  if (logits.size(-1) == 0) invalid_argument(std::string(name) + " has an empty vocabulary dimension");
}

void check_tokens(const at::Tensor& tokens, const at::Tensor& logits, const char* name) {
  if (!tokens.defined()) invalid_argument(std::string(name) + " is required");
  check_same_device(tokens, name, logits, "the logits");
  if (tokens.scalar_type() != at::kLong && tokens.scalar_type() != at::kInt) {
    invalid_argument(std::string(name) + " must be an int64 or int32 tensor, got " + dtype_name(tokens.scalar_type()));
  }
  auto expected = logits.sizes().slice(0, logits.dim() - 1);
  if (tokens.sizes() != expected) {
    invalid_argument(std::string(name) + " has shape " + c10::str(tokens.sizes()) + " but the logits need " + c10::str(expected));
  }
}

void check_index_range(const at::Tensor& index, int64_t V) {
  if (index.numel() == 0) return;
  auto [low, high] = at::aminmax(index);
  at::Tensor bounds = at::stack({low, high}).to(at::kCPU, at::kLong);  // one device sync for both
  const int64_t lo = bounds[0].item<int64_t>();
  const int64_t hi = bounds[1].item<int64_t>();
  if (lo < 0 || hi >= V) {
    invalid_argument("token index out of range: found " + std::to_string(lo < 0 ? lo : hi) + " for a vocabulary of " + std::to_string(V));
  }
}

at::ScalarType acc_type(at::ScalarType logits_type) { return logits_type == at::kDouble ? at::kDouble : at::kFloat; }

#ifdef PREFIX_RL_CUDA_KERNELS
// The fused CUDA path takes CUDA logits of a reduced or single precision and a small K, on a device the kernels
// were built for; the rest composes ATen ops.
static bool fused_cuda(const at::Tensor& logits, int64_t K) { return K <= cuda::kMaxGatherK && cuda_kernels_for(logits); }
#endif

// Whether gather_logprobs runs fused on this device (else the ATen composition).
static bool fused_available(const at::Tensor& logits, int64_t K) {
#ifdef PREFIX_RL_CUDA_KERNELS
  if (fused_cuda(logits, K)) return true;
#endif
  return logits.device().is_cpu();
}

// Forward of gather_logprobs on CPU: returns (logp [N, K] in out_type, lse [N] in the accumulation type). Each
// log-prob is formed in double from the double logsumexp, so it is rounded once, to out_type.
static std::pair<at::Tensor, at::Tensor> gather_forward_cpu(const at::Tensor& logits2d, const at::Tensor& index2d, double temperature,
                                                            at::ScalarType out_type) {
  const int64_t N = logits2d.size(0), V = logits2d.size(1), K = index2d.size(1);
  const auto acc = acc_type(logits2d.scalar_type());
  at::Tensor logp = at::empty({N, K}, logits2d.options().dtype(at::kDouble));
  at::Tensor lse = at::empty({N}, logits2d.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, logits2d.scalar_type(), "gather_logprobs", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* x = logits2d.data_ptr<scalar_t>();
    const int64_t* ids = index2d.data_ptr<int64_t>();
    double* out = logp.data_ptr<double>();
    A* lse_out = lse.data_ptr<A>();
    const A scale = static_cast<A>(1.0 / temperature);
    parallel_rows(N, 16, [&](int64_t n) {
      const scalar_t* row = x + n * V;
      const double row_lse = kernels::row_logsumexp(row, V, scale);
      lse_out[n] = static_cast<A>(row_lse);
      for (int64_t k = 0; k < K; ++k) out[n * K + k] = static_cast<double>(static_cast<A>(row[ids[n * K + k]]) * scale) - row_lse;
    });
  });
  return {logp.to(out_type), lse};
}

// Writes into `grad_logits`, which may be logits2d itself: each element is read before it is written.
static void gather_backward_cpu(const at::Tensor& logits2d, const at::Tensor& index2d, const at::Tensor& lse, const at::Tensor& grad2d,
                                double temperature, at::Tensor& grad_logits) {
  const int64_t N = logits2d.size(0), V = logits2d.size(1), K = index2d.size(1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, logits2d.scalar_type(), "gather_logprobs_backward", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* x = logits2d.data_ptr<scalar_t>();
    const int64_t* ids = index2d.data_ptr<int64_t>();
    const A* g = grad2d.data_ptr<A>();
    const A* row_lse = lse.data_ptr<A>();
    scalar_t* out = grad_logits.data_ptr<scalar_t>();
    const A scale = static_cast<A>(1.0 / temperature);
    parallel_rows(N, 16, [&](int64_t n) { kernels::row_logprob_backward(x + n * V, V, scale, row_lse[n], ids + n * K, g + n * K, K, out + n * V); });
  });
}

static std::pair<at::Tensor, at::Tensor> gather_forward(const at::Tensor& logits2d, const at::Tensor& index2d, double temperature,
                                                        at::ScalarType out_type) {
#ifdef PREFIX_RL_CUDA_KERNELS
  if (fused_cuda(logits2d, index2d.size(1))) {
    const int64_t N = logits2d.size(0), V = logits2d.size(1), K = index2d.size(1);
    at::Tensor logp = at::empty({N, K}, logits2d.options().dtype(out_type)), lse = at::empty({N}, logits2d.options().dtype(at::kFloat));
    c10::cuda::CUDAGuard guard(logits2d.device());
    check_cuda(cuda::gather_logprobs_forward(
        logits2d.data_ptr(), cuda_type(logits2d.scalar_type()), N, V, static_cast<float>(1.0 / temperature), index2d.data_ptr<int64_t>(), K,
        logp.data_ptr(), out_type == at::kDouble ? cuda::LogprobType::Float64 : cuda::LogprobType::Float32, lse.data_ptr<float>(), current_stream()));
    return {logp, lse};
  }
#endif
  return gather_forward_cpu(logits2d, index2d, temperature, out_type);
}

static at::Tensor gather_backward(const at::Tensor& logits2d, const at::Tensor& index2d, const at::Tensor& lse, const at::Tensor& grad2d,
                                  double temperature, bool inplace) {
  at::Tensor grad_logits = inplace ? logits2d : cached_empty(logits2d.sizes(), logits2d.options());
  if (inplace) logits2d.unsafeGetTensorImpl()->bump_version();
#ifdef PREFIX_RL_CUDA_KERNELS
  if (fused_cuda(logits2d, index2d.size(1))) {
    c10::cuda::CUDAGuard guard(logits2d.device());
    check_cuda(cuda::gather_logprobs_backward(logits2d.data_ptr(), cuda_type(logits2d.scalar_type()), logits2d.size(0), logits2d.size(1),
                                              static_cast<float>(1.0 / temperature), lse.data_ptr<float>(), index2d.data_ptr<int64_t>(),
                                              grad2d.data_ptr<float>(), index2d.size(1), grad_logits.data_ptr(), current_stream()));
    return grad_logits;
  }
#endif
  gather_backward_cpu(logits2d, index2d, lse, grad2d, temperature, grad_logits);
  return grad_logits;
}

// The reference composition, used on devices without a fused kernel (and as the parity baseline in tests).
static at::Tensor gather_logprobs_composed(const at::Tensor& logits, const at::Tensor& index, double temperature, at::ScalarType out_type) {
  at::Tensor scaled = temperature == 1.0 ? logits : logits / temperature;
  const auto compute = at::promote_types(acc_type(logits.scalar_type()), out_type);
  return at::log_softmax(scaled.to(compute), -1).gather(-1, index).to(out_type);
}

namespace {

class GatherLogprobsFn : public torch::autograd::Function<GatherLogprobsFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& index, double temperature,
                            bool inplace_backward, at::ScalarType out_type) {
    const int64_t V = logits.size(-1), K = index.size(-1);
    at::Tensor logits2d = logits.reshape({-1, V}).contiguous();
    at::Tensor index2d = index.reshape({-1, K}).to(at::kLong).contiguous();
    auto [logp, lse] = gather_forward(logits2d, index2d, temperature, out_type);
    ctx->save_for_backward({logits2d, index2d, lse});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["inplace"] = inplace_backward;
    ctx->saved_data["shape"] = logits.sizes().vec();
    return logp.reshape(index.sizes());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& logits2d = saved[0];
    const at::Tensor& index2d = saved[1];
    at::Tensor grad2d = grads[0].reshape({-1, index2d.size(1)}).to(acc_type(logits2d.scalar_type())).contiguous();
    at::Tensor grad =
        gather_backward(logits2d, index2d, saved[2], grad2d, ctx->saved_data["temperature"].toDouble(), ctx->saved_data["inplace"].toBool());
    return {grad.reshape(ctx->saved_data["shape"].toIntVector()), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

static void check_gather_args(const at::Tensor& logits, const at::Tensor& index, double temperature) {
  check_logits(logits, "logits");
  if (index.scalar_type() != at::kLong && index.scalar_type() != at::kInt) invalid_argument("index must be an int64 or int32 tensor");
  check_same_device(index, "index", logits, "the logits");
  if (index.dim() != logits.dim() || index.sizes().slice(0, index.dim() - 1) != logits.sizes().slice(0, logits.dim() - 1)) {
    invalid_argument("index has shape " + c10::str(index.sizes()) + "; it must be logits' shape " + c10::str(logits.sizes()) +
                     " with the last dim replaced by K");
  }
  if (!(temperature > 0)) invalid_argument("temperature must be > 0");
  check_index_range(index, logits.size(-1));
}

static at::ScalarType output_type(const at::Tensor& logits, std::optional<at::ScalarType> out_type) {
  const auto type = out_type.value_or(acc_type(logits.scalar_type()));
  if (type != at::kFloat && type != at::kDouble) invalid_argument("log-probs are float32 or float64, got " + dtype_name(type));
  return type;
}

at::Tensor gather_logprobs(const at::Tensor& logits, const at::Tensor& index, double temperature, bool inplace_backward,
                           std::optional<at::ScalarType> out_type) {
  check_gather_args(logits, index, temperature);
  const auto type = output_type(logits, out_type);
  if (!fused_available(logits, index.size(-1))) return gather_logprobs_composed(logits, index.to(at::kLong), temperature, type);
  return GatherLogprobsFn::apply(logits, index, temperature, inplace_backward, type);
}

at::Tensor gather_logprobs_nograd(const at::Tensor& logits, const at::Tensor& index, double temperature, std::optional<at::ScalarType> out_type) {
  check_gather_args(logits, index, temperature);
  const auto type = output_type(logits, out_type);
  at::NoGradGuard no_grad;
  if (!fused_available(logits, index.size(-1))) return gather_logprobs_composed(logits, index.to(at::kLong), temperature, type);
  const int64_t V = logits.size(-1), K = index.size(-1);
  auto [logp, lse] = gather_forward(logits.reshape({-1, V}).contiguous(), index.reshape({-1, K}).to(at::kLong).contiguous(), temperature, type);
  return logp.reshape(index.sizes());
}

// ---- token_entropy ----

// Whether token_entropy runs fused on this device (else the ATen composition).
static bool entropy_fused(const at::Tensor& logits) {
#ifdef PREFIX_RL_CUDA_KERNELS
  if (fused_cuda(logits, 0)) return true;
#endif
  return logits.device().is_cpu();
}

// (lse, entropy) [N] of logits2d [N, V], in the accumulation type (float32 on CUDA): one logsumexp pass and one
// entropy pass per row.
static std::pair<at::Tensor, at::Tensor> entropy_forward(const at::Tensor& logits2d, double temperature) {
  const int64_t N = logits2d.size(0), V = logits2d.size(1);
  const auto acc = acc_type(logits2d.scalar_type());
  at::Tensor lse = at::empty({N}, logits2d.options().dtype(acc));
  at::Tensor entropy = at::empty({N}, logits2d.options().dtype(acc));
#ifdef PREFIX_RL_CUDA_KERNELS
  if (logits2d.is_cuda()) {
    c10::cuda::CUDAGuard guard(logits2d.device());
    check_cuda(cuda::token_entropy_forward(logits2d.data_ptr(), cuda_type(logits2d.scalar_type()), N, V, static_cast<float>(1.0 / temperature),
                                           lse.data_ptr<float>(), entropy.data_ptr<float>(), current_stream()));
    return {lse, entropy};
  }
#endif
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, logits2d.scalar_type(), "token_entropy", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* x = logits2d.data_ptr<scalar_t>();
    A* lse_out = lse.data_ptr<A>();
    A* h_out = entropy.data_ptr<A>();
    const A scale = static_cast<A>(1.0 / temperature);
    parallel_rows(N, 16, [&](int64_t n) {
      const scalar_t* row = x + n * V;
      lse_out[n] = static_cast<A>(kernels::row_logsumexp(row, V, scale));
      h_out[n] = kernels::row_entropy(row, V, scale, lse_out[n]);
    });
  });
  return {lse, entropy};
}

static at::Tensor entropy_backward(const at::Tensor& logits2d, const at::Tensor& lse, const at::Tensor& entropy, const at::Tensor& g,
                                   double temperature) {
  const int64_t N = logits2d.size(0), V = logits2d.size(1);
  at::Tensor grad = cached_empty(logits2d.sizes(), logits2d.options());
#ifdef PREFIX_RL_CUDA_KERNELS
  if (logits2d.is_cuda()) {
    c10::cuda::CUDAGuard guard(logits2d.device());
    check_cuda(cuda::token_entropy_backward(logits2d.data_ptr(), cuda_type(logits2d.scalar_type()), N, V, static_cast<float>(1.0 / temperature),
                                            lse.data_ptr<float>(), entropy.data_ptr<float>(), g.data_ptr<float>(), grad.data_ptr(),
                                            current_stream()));
    return grad;
  }
#endif
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, logits2d.scalar_type(), "token_entropy_backward", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* x = logits2d.data_ptr<scalar_t>();
    const A* lse_p = lse.data_ptr<A>();
    const A* h = entropy.data_ptr<A>();
    const A* gp = g.data_ptr<A>();
    scalar_t* out = grad.data_ptr<scalar_t>();
    const A scale = static_cast<A>(1.0 / temperature);
    parallel_rows(N, 16, [&](int64_t n) { kernels::row_entropy_backward(x + n * V, V, scale, lse_p[n], h[n], gp[n], out + n * V); });
  });
  return grad;
}

namespace {

class TokenEntropyFn : public torch::autograd::Function<TokenEntropyFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits, double temperature) {
    const int64_t V = logits.size(-1);
    at::Tensor logits2d = logits.reshape({-1, V}).contiguous();
    auto [lse, entropy] = entropy_forward(logits2d, temperature);
    ctx->save_for_backward({logits2d, lse, entropy});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["shape"] = logits.sizes().vec();
    return entropy.reshape(logits.sizes().slice(0, logits.dim() - 1));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& logits2d = saved[0];
    at::Tensor g = grads[0].reshape({logits2d.size(0)}).to(saved[1].scalar_type()).contiguous();
    at::Tensor grad = entropy_backward(logits2d, saved[1], saved[2], g, ctx->saved_data["temperature"].toDouble());
    return {grad.reshape(ctx->saved_data["shape"].toIntVector()), at::Tensor()};
  }
};

}  // namespace

at::Tensor token_entropy(const at::Tensor& logits, double temperature) {
  check_logits(logits, "logits");
  if (!(temperature > 0)) invalid_argument("temperature must be > 0");
  if (entropy_fused(logits)) return TokenEntropyFn::apply(logits, temperature);
  // Elsewhere the composition: −Σ p·log p with 0·log 0 = 0 (special_entr).
  at::Tensor scaled = temperature == 1.0 ? logits : logits / temperature;
  return at::special_entr(at::softmax(scaled.to(acc_type(logits.scalar_type())), -1)).sum(-1);
}

// The per-row tail of candidate_set, shared by the CPU and CUDA paths: force the sampled token into slot 0, take
// log-probs, and build the mask. `ids`/`values` are the row's top-K (descending scaled logits).
template <typename A>
static void finish_candidates(const int64_t* top_ids, const A* top_values, int64_t sampled, A sampled_value, double lse, bool position_ok,
                              const CandidateOptions& o, int64_t* ids, A* logp, bool* cand) {
  const int64_t K = o.k;
  std::vector<A> values(top_values, top_values + K);
  std::copy(top_ids, top_ids + K, ids);
  // Force the sampled token into slot 0: swap it there, or shift right and insert it.
  const int64_t at = std::find(ids, ids + K, sampled) - ids;
  if (at < K) {
    std::swap(ids[0], ids[at]);
    std::swap(values[0], values[at]);
  } else {
    for (int64_t k = K - 1; k > 0; --k) ids[k] = ids[k - 1], values[k] = values[k - 1];
    ids[0] = sampled;
    values[0] = sampled_value;
  }
  for (int64_t k = 0; k < K; ++k) logp[k] = static_cast<A>(values[k] - lse);  // one rounding, from double
  // The P_min test happens in log space, in the accumulation type: no exp rounding near the threshold.
  const bool use_min_p = o.min_p > 1e-5;  // the reference skips the filter for tiny P_min
  const A log_min_p = static_cast<A>(std::log(o.min_p));
  for (int64_t k = 0; k < K; ++k) {
    cand[k] = position_ok && (!use_min_p || (o.strict ? logp[k] > log_min_p : logp[k] >= log_min_p));
  }
  if (o.top_p < 1.0) {
    // Cumulative π_old over the slots sorted by probability; the most likely slot is always kept.
    std::vector<int64_t> order(K);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return logp[i] > logp[j]; });
    A cumulative = 0;
    for (int64_t r = 0; r < K; ++r) {
      cumulative += std::exp(logp[order[r]]);
      if (r > 0 && cumulative > static_cast<A>(o.top_p)) cand[order[r]] = false;
    }
  }
  if (o.force_sampled) cand[0] = position_ok;
}

void check_candidate_options(const CandidateOptions& o, int64_t V) {
  if (o.k < 1 || o.k > V) invalid_argument("K must be in [1, V=" + std::to_string(V) + "], got " + std::to_string(o.k));
  if (!(o.min_p > 0 && o.min_p < 1)) invalid_argument("minP (P_min) must be in (0, 1), got " + std::to_string(o.min_p));
  if (!(o.top_p > 0 && o.top_p <= 1)) invalid_argument("topP must be in (0, 1], got " + std::to_string(o.top_p));
  if (!(o.temperature > 0)) invalid_argument("temperature must be > 0");
}

// Which positions may hold candidates: valid ones ([B, T] mask), minus each row's last response token (reference).
static std::vector<char> candidate_positions(const at::Tensor& mask, bool exclude_last) {
  at::Tensor valid = mask.to(at::kBool).contiguous().cpu();
  const int64_t B = valid.size(0), T = valid.size(1);
  std::vector<char> position_ok(B * T, 0);
  const bool* valid_p = valid.data_ptr<bool>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t last = -1;
    for (int64_t t = 0; t < T; ++t)
      if (valid_p[b * T + t]) last = t;
    for (int64_t t = 0; t < T; ++t) position_ok[b * T + t] = valid_p[b * T + t] && !(exclude_last && t == last);
  }
  return position_ok;
}

CandidateSet candidates_from_topk(const at::Tensor& top_ids, const at::Tensor& top_values, const at::Tensor& token_values, const at::Tensor& lse,
                                  const at::Tensor& tokens, const at::Tensor& mask, const CandidateOptions& o, at::Device device) {
  const int64_t B = mask.size(0), T = mask.size(1), K = o.k, N = B * T;
  const std::vector<char> position_ok = candidate_positions(mask, o.exclude_last);
  const auto acc = top_values.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor ids = top_ids.to(at::kCPU, at::kLong).contiguous(), values = top_values.to(at::kCPU, acc).contiguous();
  at::Tensor token = token_values.to(at::kCPU, acc).contiguous(), tok = tokens.to(at::kCPU, at::kLong).contiguous();
  at::Tensor lse_d = lse.to(at::kCPU, at::kDouble).contiguous();
  at::Tensor indices = at::empty({B, T, K}, at::kLong), logp = at::empty({B, T, K}, acc), cand = at::empty({B, T, K}, at::kBool);
  AT_DISPATCH_FLOATING_TYPES(acc, "candidates_from_topk", [&] {
    for (int64_t n = 0; n < N; ++n) {
      finish_candidates<scalar_t>(ids.data_ptr<int64_t>() + n * K, values.data_ptr<scalar_t>() + n * K, tok.data_ptr<int64_t>()[n],
                                  token.data_ptr<scalar_t>()[n], lse_d.data_ptr<double>()[n], position_ok[n], o, indices.data_ptr<int64_t>() + n * K,
                                  logp.data_ptr<scalar_t>() + n * K, cand.data_ptr<bool>() + n * K);
    }
  });
  return {indices.to(device), logp.to(device), cand.to(device)};
}

CandidateSet candidate_set(const at::Tensor& old_logits, const at::Tensor& tokens, const at::Tensor& mask, const CandidateOptions& o) {
  check_logits(old_logits, "oldLogits");
  if (old_logits.dim() != 3) invalid_argument("oldLogits must be [B, T, V], got " + c10::str(old_logits.sizes()));
  check_tokens(tokens, old_logits, "tokens");
  if (mask.sizes() != tokens.sizes()) invalid_argument("mask has shape " + c10::str(mask.sizes()) + " but tokens have " + c10::str(tokens.sizes()));
  check_same_device(mask, "mask", old_logits, "oldLogits");
  const int64_t B = old_logits.size(0), T = old_logits.size(1), V = old_logits.size(2), K = o.k, N = B * T;
  check_candidate_options(o, V);
  at::Tensor tok = tokens.to(at::kLong).contiguous();
  check_index_range(tok, V);
  at::Tensor logits = old_logits.detach().contiguous();
  const at::Device device = old_logits.device();
#ifdef PREFIX_RL_CUDA_KERNELS
  if (K <= cuda::kMaxTopK && V <= INT32_MAX && cuda_kernels_for(logits)) {
    // The [N, V] pass runs on the GPU; the [N, K] tail (a few bytes per position) on the CPU.
    const float scale = static_cast<float>(1.0 / o.temperature);
    auto f32 = logits.options().dtype(at::kFloat);
    at::Tensor top_ids = at::empty({N, K}, logits.options().dtype(at::kLong));
    at::Tensor top_values = at::empty({N, K}, f32), token_values = at::empty({N}, f32), lse = at::empty({N}, f32);
    {
      c10::cuda::CUDAGuard guard(logits.device());
      check_cuda(cuda::row_topk(logits.data_ptr(), cuda_type(logits.scalar_type()), N, V, scale, K, tok.data_ptr<int64_t>(),
                                top_ids.data_ptr<int64_t>(), top_values.data_ptr<float>(), token_values.data_ptr<float>(), lse.data_ptr<float>(),
                                current_stream()));
    }
    return candidates_from_topk(top_ids, top_values, token_values, lse, tok, mask, o, device);
  }
#endif
  const std::vector<char> position_ok = candidate_positions(mask, o.exclude_last);
  at::Tensor tok_cpu = tok.cpu();
  const auto acc = acc_type(logits.scalar_type());
  at::Tensor indices = at::empty({B, T, K}, at::kLong);
  at::Tensor logp = at::empty({B, T, K}, at::TensorOptions().dtype(acc));
  at::Tensor cand = at::empty({B, T, K}, at::kBool);
  logits = logits.cpu();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, logits.scalar_type(), "candidate_set", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* x = logits.data_ptr<scalar_t>();
    const int64_t* tok_p = tok_cpu.data_ptr<int64_t>();
    const A scale = static_cast<A>(1.0 / o.temperature);
    parallel_rows(N, 8, [&](int64_t n) {
      std::vector<A> top_values(K);  // K slots: nothing beside the row's O(V) scan
      std::vector<int64_t> top_ids(K);
      const scalar_t* row = x + n * V;
      const double lse = kernels::row_logsumexp(row, V, scale);
      kernels::row_topk(row, V, K, top_ids.data(), top_values.data());
      for (auto& value : top_values) value *= scale;  // scale > 0 keeps the order
      finish_candidates<A>(top_ids.data(), top_values.data(), tok_p[n], static_cast<A>(row[tok_p[n]]) * scale, lse, position_ok[n], o,
                           indices.data_ptr<int64_t>() + n * K, logp.data_ptr<A>() + n * K, cand.data_ptr<bool>() + n * K);
    });
  });
  return {indices.to(device), logp.to(device), cand.to(device)};
}

}  // namespace prefix_rl
