#include "logprobs.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <numeric>

#include "common.h"
#include "ops/row_kernels.h"

namespace prefix_rl {

using kernels::acc_t;

void check_logits(const at::Tensor& logits, const char* name) {
  if (!logits.defined()) invalid_argument(std::string(name) + " is required");
  if (!at::isFloatingType(logits.scalar_type())) {
    invalid_argument(std::string(name) + " must be a floating tensor (float32, float64, bfloat16, float16), got " +
                     dtype_name(logits.scalar_type()));
  }
  if (logits.dim() < 2) invalid_argument(std::string(name) + " must have shape [..., V], got " + c10::str(logits.sizes()));
  if (logits.size(-1) == 0) invalid_argument(std::string(name) + " has an empty vocabulary dimension");
}

void check_tokens(const at::Tensor& tokens, const at::Tensor& logits, const char* name) {
  if (!tokens.defined()) invalid_argument(std::string(name) + " is required");
  if (tokens.scalar_type() != at::kLong && tokens.scalar_type() != at::kInt) {
    invalid_argument(std::string(name) + " must be an int64 or int32 tensor, got " + dtype_name(tokens.scalar_type()));
  }
  auto expected = logits.sizes().slice(0, logits.dim() - 1);
  if (tokens.sizes() != expected) {
    invalid_argument(std::string(name) + " has shape " + c10::str(tokens.sizes()) + " but the logits need " + c10::str(expected));
  }
}

static void check_index_range(const at::Tensor& index, int64_t V) {
  if (index.numel() == 0) return;
  const int64_t lo = index.min().item<int64_t>();
  const int64_t hi = index.max().item<int64_t>();
  if (lo < 0 || hi >= V) {
    invalid_argument("token index out of range: found " + std::to_string(lo < 0 ? lo : hi) + " for a vocabulary of " + std::to_string(V));
  }
}

static at::ScalarType acc_type(at::ScalarType logits_type) { return logits_type == at::kDouble ? at::kDouble : at::kFloat; }

// Forward of gather_logprobs on CPU: returns (logp [N, K], lse [N]).
static std::pair<at::Tensor, at::Tensor> gather_forward_cpu(const at::Tensor& logits2d, const at::Tensor& index2d, double temperature) {
  const int64_t N = logits2d.size(0), V = logits2d.size(1), K = index2d.size(1);
  const auto acc = acc_type(logits2d.scalar_type());
  at::Tensor logp = at::empty({N, K}, logits2d.options().dtype(acc));
  at::Tensor lse = at::empty({N}, logits2d.options().dtype(acc));
  const CancelFlag* cancel = current_cancel_flag();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, logits2d.scalar_type(), "gather_logprobs", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* x = logits2d.data_ptr<scalar_t>();
    const int64_t* ids = index2d.data_ptr<int64_t>();
    A* out = logp.data_ptr<A>();
    A* lse_out = lse.data_ptr<A>();
    const A scale = static_cast<A>(1.0 / temperature);
    at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        if ((n & 15) == 0) check_cancelled(cancel);  // parallel_for hands each thread one large chunk
        const scalar_t* row = x + n * V;
        const A row_lse = kernels::row_logsumexp(row, V, scale);
        lse_out[n] = row_lse;
        for (int64_t k = 0; k < K; ++k) out[n * K + k] = static_cast<A>(row[ids[n * K + k]]) * scale - row_lse;
      }
    });
  });
  return {logp, lse};
}

static at::Tensor gather_backward_cpu(const at::Tensor& logits2d, const at::Tensor& index2d, const at::Tensor& lse,
                                      const at::Tensor& grad2d, double temperature) {
  const int64_t N = logits2d.size(0), V = logits2d.size(1), K = index2d.size(1);
  at::Tensor grad_logits = at::empty_like(logits2d);
  const CancelFlag* cancel = current_cancel_flag();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, logits2d.scalar_type(), "gather_logprobs_backward", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* x = logits2d.data_ptr<scalar_t>();
    const int64_t* ids = index2d.data_ptr<int64_t>();
    const A* g = grad2d.data_ptr<A>();
    const A* row_lse = lse.data_ptr<A>();
    scalar_t* out = grad_logits.data_ptr<scalar_t>();
    const A scale = static_cast<A>(1.0 / temperature);
    at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        if ((n & 15) == 0) check_cancelled(cancel);
        kernels::row_logprob_backward(x + n * V, V, scale, row_lse[n], ids + n * K, g + n * K, K, out + n * V);
      }
    });
  });
  return grad_logits;
}

// The reference composition, used on devices without a fused kernel (and as the parity baseline in tests).
static at::Tensor gather_logprobs_composed(const at::Tensor& logits, const at::Tensor& index, double temperature) {
  at::Tensor scaled = temperature == 1.0 ? logits : logits / temperature;
  return at::log_softmax(scaled.to(acc_type(logits.scalar_type())), -1).gather(-1, index);
}

namespace {

class GatherLogprobsFn : public torch::autograd::Function<GatherLogprobsFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& index,
                            double temperature) {
    const int64_t V = logits.size(-1), K = index.size(-1);
    at::Tensor logits2d = logits.reshape({-1, V}).contiguous();
    at::Tensor index2d = index.reshape({-1, K}).to(at::kLong).contiguous();
    auto [logp, lse] = gather_forward_cpu(logits2d, index2d, temperature);
    ctx->save_for_backward({logits2d, index2d, lse});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["shape"] = logits.sizes().vec();
    return logp.reshape(index.sizes());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& logits2d = saved[0];
    const at::Tensor& index2d = saved[1];
    at::Tensor grad2d = grads[0].reshape({-1, index2d.size(1)}).to(acc_type(logits2d.scalar_type())).contiguous();
    at::Tensor grad = gather_backward_cpu(logits2d, index2d, saved[2], grad2d, ctx->saved_data["temperature"].toDouble());
    return {grad.reshape(ctx->saved_data["shape"].toIntVector()), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

static void check_gather_args(const at::Tensor& logits, const at::Tensor& index, double temperature) {
  check_logits(logits, "logits");
  if (index.scalar_type() != at::kLong && index.scalar_type() != at::kInt) invalid_argument("index must be an int64 or int32 tensor");
  if (index.dim() != logits.dim() || index.sizes().slice(0, index.dim() - 1) != logits.sizes().slice(0, logits.dim() - 1)) {
    invalid_argument("index has shape " + c10::str(index.sizes()) + "; it must be logits' shape " + c10::str(logits.sizes()) +
                     " with the last dim replaced by K");
  }
  if (!(temperature > 0)) invalid_argument("temperature must be > 0");
  check_index_range(index, logits.size(-1));
}

at::Tensor gather_logprobs(const at::Tensor& logits, const at::Tensor& index, double temperature) {
  check_gather_args(logits, index, temperature);
  if (!logits.device().is_cpu()) return gather_logprobs_composed(logits, index.to(at::kLong), temperature);
  return GatherLogprobsFn::apply(logits, index, temperature);
}

at::Tensor gather_logprobs_nograd(const at::Tensor& logits, const at::Tensor& index, double temperature) {
  check_gather_args(logits, index, temperature);
  at::NoGradGuard no_grad;
  if (!logits.device().is_cpu()) return gather_logprobs_composed(logits, index.to(at::kLong), temperature);
  const int64_t V = logits.size(-1), K = index.size(-1);
  auto [logp, lse] = gather_forward_cpu(logits.reshape({-1, V}).contiguous(), index.reshape({-1, K}).to(at::kLong).contiguous(), temperature);
  return logp.reshape(index.sizes());
}

CandidateSet candidate_set(const at::Tensor& old_logits, const at::Tensor& tokens, const at::Tensor& mask, const CandidateOptions& o) {
  check_logits(old_logits, "oldLogits");
  if (old_logits.dim() != 3) invalid_argument("oldLogits must be [B, T, V], got " + c10::str(old_logits.sizes()));
  check_tokens(tokens, old_logits, "tokens");
  if (mask.sizes() != tokens.sizes()) invalid_argument("mask has shape " + c10::str(mask.sizes()) + " but tokens have " + c10::str(tokens.sizes()));
  const int64_t B = old_logits.size(0), T = old_logits.size(1), V = old_logits.size(2), K = o.k;
  if (K < 1 || K > V) invalid_argument("K must be in [1, V=" + std::to_string(V) + "], got " + std::to_string(K));
  if (!(o.min_p > 0 && o.min_p < 1)) invalid_argument("minP (P_min) must be in (0, 1), got " + std::to_string(o.min_p));
  if (!(o.top_p > 0 && o.top_p <= 1)) invalid_argument("topP must be in (0, 1], got " + std::to_string(o.top_p));
  if (!(o.temperature > 0)) invalid_argument("temperature must be > 0");
  at::Tensor tok = tokens.to(at::kLong).contiguous().cpu();
  check_index_range(tok, V);
  at::Tensor valid = mask.to(at::kBool).contiguous().cpu();
  at::Tensor logits = old_logits.detach().contiguous().cpu();

  const auto acc = acc_type(logits.scalar_type());
  at::Tensor indices = at::empty({B, T, K}, at::kLong);
  at::Tensor logp = at::empty({B, T, K}, logits.options().dtype(acc));
  at::Tensor cand = at::zeros({B, T, K}, at::kBool);
  // Last response position of each row (exclude_last drops it, as the reference does).
  std::vector<int64_t> last(B, -1);
  const bool* valid_p = valid.data_ptr<bool>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) if (valid_p[b * T + t]) last[b] = t;
  }
  const CancelFlag* cancel = current_cancel_flag();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, logits.scalar_type(), "candidate_set", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* x = logits.data_ptr<scalar_t>();
    const int64_t* tok_p = tok.data_ptr<int64_t>();
    int64_t* ids_p = indices.data_ptr<int64_t>();
    A* logp_p = logp.data_ptr<A>();
    bool* cand_p = cand.data_ptr<bool>();
    const A scale = static_cast<A>(1.0 / o.temperature);
    // The P_min test happens in log space, in the accumulation type: no exp rounding near the threshold.
    const A log_min_p = o.min_p > 0 ? static_cast<A>(std::log(o.min_p)) : -std::numeric_limits<A>::infinity();
    const bool use_min_p = o.min_p > 1e-5;  // the reference skips the filter for tiny P_min
    at::parallel_for(0, B * T, 8, [&](int64_t begin, int64_t end) {
      std::vector<A> values(K), probs(K);
      std::vector<int64_t> order(K);
      for (int64_t n = begin; n < end; ++n) {
        if ((n & 15) == 0) check_cancelled(cancel);
        const scalar_t* row = x + n * V;
        int64_t* ids = ids_p + n * K;
        const A lse = kernels::row_logsumexp(row, V, scale);
        kernels::row_topk(row, V, K, ids, values.data());
        // Force the sampled token into slot 0: swap it there, or shift right and insert it.
        const int64_t sampled = tok_p[n];
        int64_t at = std::find(ids, ids + K, sampled) - ids;
        if (at < K) {
          std::swap(ids[0], ids[at]);
        } else {
          for (int64_t k = K - 1; k > 0; --k) ids[k] = ids[k - 1];
          ids[0] = sampled;
        }
        A* lp = logp_p + n * K;
        for (int64_t k = 0; k < K; ++k) lp[k] = static_cast<A>(row[ids[k]]) * scale - lse;

        const int64_t b = n / T, t = n % T;
        const bool position_ok = valid_p[n] && !(o.exclude_last && t == last[b]);
        bool* c = cand_p + n * K;
        for (int64_t k = 0; k < K; ++k) {
          c[k] = position_ok && (!use_min_p || (o.strict ? lp[k] > log_min_p : lp[k] >= log_min_p));
        }
        if (o.top_p < 1.0) {
          // Cumulative π_old over the slots sorted by probability; the most likely slot is always kept.
          for (int64_t k = 0; k < K; ++k) probs[k] = std::exp(lp[k]);
          std::iota(order.begin(), order.end(), 0);
          std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return probs[i] > probs[j]; });
          A cumulative = 0;
          for (int64_t r = 0; r < K; ++r) {
            cumulative += probs[order[r]];
            if (r > 0 && cumulative > static_cast<A>(o.top_p)) c[order[r]] = false;
          }
        }
        if (o.force_sampled) c[0] = position_ok;
      }
    });
  });
  const at::Device device = old_logits.device();
  return {indices.to(device), logp.to(device), cand.to(device)};
}

}  // namespace prefix_rl
