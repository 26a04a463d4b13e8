#include "ops/head_logprobs.h"

#include <ATen/Dispatch.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "common.h"
#include "ops/cuda_launch.h"
#include "ops/parallel_rows.h"
#include "ops/row_kernels.h"

namespace prefix_rl {
namespace {

// The head as the streamed passes see it: W [V, H] and, with a LoRA on it, hidden_r [N, r] and B [V, r] (HeadLora).
struct Head {
  at::Tensor weight, lora_hidden, lora_weight;
  int64_t vocab() const { return weight.size(0); }
  bool has_lora() const { return lora_hidden.defined() && lora_hidden.size(1) > 0; }  // rank 0: none
};

// The chunk [begin, begin + C) of the vocabulary: its logits [N, C] in hidden's dtype, unscaled: h·W_cᵀ (+ h_r·B_cᵀ).
at::Tensor chunk_product(const at::Tensor& hidden, const Head& head, int64_t begin, int64_t C) {
  at::Tensor z = at::mm(hidden, head.weight.narrow(0, begin, C).t());
  if (head.has_lora()) z.addmm_(head.lora_hidden, head.lora_weight.narrow(0, begin, C).t());
  return z;
}

// The same in the accumulation type.
at::Tensor chunk_logits(const at::Tensor& hidden, const Head& head, int64_t begin, int64_t end, at::ScalarType acc) {
  return chunk_product(hidden, head, begin, end - begin).to(acc);
}

// For the index entries inside [begin, end): their column in the chunk and whether they fall in it.
std::pair<at::Tensor, at::Tensor> chunk_columns(const at::Tensor& index, int64_t begin, int64_t end) {
  at::Tensor inside = (index >= begin) & (index < end);
  return {(index - begin).clamp(0, end - begin - 1), inside};
}

// How a chunk's logits are reduced: by the CPU row kernels (one in-cache pass per row of the chunk, in the model
// dtype), by the CUDA kernels (one pass over the chunk on the device, in the model dtype) or by ATen ops (any device
// and dtype: float64 on CUDA; PREFIX_RL_HEAD_KERNELS=aten forces them, for tests and for comparison).
enum class ChunkPath { Rows, Cuda, Aten };

// A development switch read from the environment: unset, empty, or one of `allowed` (else a clear error, so that a
// mistyped switch never silently runs the default path).
const char* env_switch(const char* name, std::initializer_list<const char*> allowed) {
  const char* value = std::getenv(name);
  if (!value || !*value) return nullptr;
  for (const char* ok : allowed) {
    if (std::strcmp(value, ok) == 0) return ok;
  }
  std::string choices;
  for (const char* ok : allowed) choices += (choices.empty() ? "'" : ", '") + std::string(ok) + "'";
  invalid_argument(std::string(name) + " must be " + choices + " or unset, got '" + value + "'");
}

ChunkPath chunk_path(const at::Tensor& hidden) {
  if (env_switch("PREFIX_RL_HEAD_KERNELS", {"aten"})) return ChunkPath::Aten;
  if (hidden.device().is_cpu()) return ChunkPath::Rows;
#ifdef PREFIX_RL_CUDA_KERNELS
  if (cuda_kernels_for(hidden)) return ChunkPath::Cuda;
#endif
  return ChunkPath::Aten;
}

// What one streamed pass computes besides the gathered logits and the logsumexp.
struct Request {
  double temperature = 1.0;
  int64_t chunk = 4096;
  bool entropy = false;
  int64_t top_k = 0;
  bool expectations = false;  // Σ_{v ∉ index} p_v·W_v (and ·B_v) per row, for a frozen head's backward
};

struct Pass {
  at::Tensor gathered;                        // [N, K] scaled logits at the index (accumulation type)
  at::Tensor lse;                             // [N] float64
  at::Tensor entropy;                         // [N] accumulation type, when asked for
  at::Tensor top_ids, top_values;             // [N, top_k] ids and unscaled logits, largest first, when asked for
  at::Tensor expected_weight, expected_lora;  // [N, H] and [N, r] (accumulation type), when asked for: over the
                                              // tokens not in the row's index
};

// Folds a chunk into the running expectations E ← E·rescale + weight·(P_c·W_c) (and P_c·B_c), P_c [N, C] being the
// chunk's own softmax in the model dtype with the row's index columns zeroed, and rescale, weight [N] (accumulation
// type) what the chunk's fold into the logsumexp gave each row; Σ_{v ∉ index} p_v·W_v is E / s once every chunk is in
// (finish_expectations). The index's own tokens are left to the backward, which weighs them in float64: for a
// confident row (p ≈ 1 at the sampled token) their term g·(1 − p) would otherwise cancel in the model dtype.
void fold_expectations(Pass& out, const at::Tensor& p, const Head& head, int64_t begin, const at::Tensor& rescale, const at::Tensor& weight) {
  auto fold = [&](at::Tensor& e, const at::Tensor& table) {
    at::Tensor term = at::mm(p, table.narrow(0, begin, p.size(1))).to(rescale.scalar_type()).mul_(weight.unsqueeze(1));
    e = e.defined() ? e.mul_(rescale.unsqueeze(1)).add_(term) : term;
  };
  fold(out.expected_weight, head.weight);
  if (head.has_lora()) fold(out.expected_lora, head.lora_weight);
}

void finish_expectations(Pass& out, const at::Tensor& s) {
  if (!out.expected_weight.defined()) return;
  const at::Tensor total = s.to(out.expected_weight.device(), out.expected_weight.scalar_type()).unsqueeze(1);
  out.expected_weight.div_(total);
  if (out.expected_lora.defined()) out.expected_lora.div_(total);
}

// The CPU pass: per chunk one GEMM, then per row the chunk's logsumexp, entropy and top-K by the row kernels, merged
// in float64 across chunks: lse = log Σ_c e^{lse_c} and H = Σ_c e^{lse_c − lse}·(lse − lse_c + H_c), kept online as
// (m, s = Σ e^{lse_c − m}, a = Σ e^{lse_c − m}·(H_c − lse_c)) so that lse = m + log s and H = lse + a / s.
Pass stream_rows(const at::Tensor& hidden, const Head& head, const at::Tensor& index, const Request& r) {
  at::NoGradGuard no_grad;
  const int64_t N = hidden.size(0), V = head.vocab(), K = index.size(1);
  const auto acc = acc_type(hidden.scalar_type());
  Pass out;
  out.gathered = at::zeros({N, K}, hidden.options().dtype(acc));
  std::vector<double> m(N, -std::numeric_limits<double>::infinity()), s(N, 0.0), a(N, 0.0);
  std::vector<int64_t> filled(N, 0);
  if (r.top_k > 0) {
    out.top_ids = at::empty({N, r.top_k}, hidden.options().dtype(at::kLong));
    out.top_values = at::empty({N, r.top_k}, hidden.options().dtype(acc));
  }
  const int64_t* ids = index.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, hidden.scalar_type(), "head_rows", [&] {
    using A = kernels::acc_t<scalar_t>;
    const A scale = static_cast<A>(1.0 / r.temperature);
    A* gathered = out.gathered.data_ptr<A>();
    // Per chunk and row, the fold's factors for the expectations (a row the chunk adds nothing to keeps them 1, 0).
    std::vector<double> rescale_c, weight_c;
    for (int64_t begin = 0; begin < V; begin += r.chunk) {
      check_cancelled();
      const int64_t end = std::min(V, begin + r.chunk), C = end - begin, take = std::min(r.top_k, C);
      at::Tensor z = chunk_product(hidden, head, begin, C);
      scalar_t* x = z.data_ptr<scalar_t>();
      if (r.expectations) rescale_c.assign(N, 1.0), weight_c.assign(N, 0.0);
      parallel_rows(N, 4, [&](int64_t n) {
        scalar_t* row = x + n * C;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t id = ids[n * K + k];
          if (id >= begin && id < end) gathered[n * K + k] = static_cast<A>(row[id - begin]) * scale;
        }
        const double lse_c = kernels::row_logsumexp(row, C, scale);
        if (std::isnan(lse_c)) {
          s[n] = lse_c;  // a NaN logit makes the row's lse (and entropy) NaN, as the unfused path's, never skipped
        } else if (lse_c > -std::numeric_limits<double>::infinity()) {
          const double h_c = r.entropy ? static_cast<double>(kernels::row_entropy(row, C, scale, static_cast<A>(lse_c))) : 0.0;
          const double m_new = std::max(m[n], lse_c), rescale = std::exp(m[n] - m_new), weight = std::exp(lse_c - m_new);
          s[n] = s[n] * rescale + weight;
          a[n] = a[n] * rescale + weight * (h_c - lse_c);
          m[n] = m_new;
          if (r.expectations) rescale_c[n] = rescale, weight_c[n] = weight;
        }
        if (take > 0) {
          // The chunk's top-K, offered to the row's running list in id order: equal values keep the lower id.
          // Per-thread buffers: no allocation per row and chunk on the intra-op threads.
          thread_local std::vector<int64_t> chunk_ids;
          thread_local std::vector<A> chunk_values;
          chunk_ids.resize(take);
          chunk_values.resize(take);
          kernels::row_topk(row, C, take, chunk_ids.data(), chunk_values.data());
          kernels::TopKList<A> list{r.top_k, out.top_ids.data_ptr<int64_t>() + n * r.top_k, out.top_values.data_ptr<A>() + n * r.top_k, filled[n]};
          for (int64_t j = 0; j < take; ++j) list.offer(chunk_values[j], begin + chunk_ids[j]);
          filled[n] = list.filled;
        }
        // Last, as it overwrites the row: the chunk's softmax without the index's tokens, the expectations' operand.
        if (r.expectations) {
          kernels::row_softmax(row, C, scale, static_cast<A>(lse_c));
          for (int64_t k = 0; k < K; ++k) {
            const int64_t id = ids[n * K + k];
            if (id >= begin && id < end) row[id - begin] = scalar_t(0);
          }
        }
      });
      if (r.expectations) {
        fold_expectations(out, z, head, begin, at::tensor(rescale_c, at::kDouble).to(acc), at::tensor(weight_c, at::kDouble).to(acc));
      }
    }
  });
  out.lse = at::empty({N}, at::kDouble);
  double* lse = out.lse.data_ptr<double>();
  for (int64_t n = 0; n < N; ++n) lse[n] = m[n] + std::log(s[n]);  // −inf for a row of −inf logits
  finish_expectations(out, at::tensor(s, at::kDouble));
  if (r.entropy) {
    at::Tensor h = at::empty({N}, at::kDouble);
    for (int64_t n = 0; n < N; ++n) h.data_ptr<double>()[n] = lse[n] + a[n] / s[n];
    out.entropy = h.to(acc);
  }
  return out;
}

// One chunk's reduction per row, for stream_chunks: the chunk's logsumexp and entropy (of its own softmax) and its
// top-`take` logits (unscaled, largest first, equal values the lower column first) with their columns.
struct ChunkStats {
  at::Tensor lse, entropy;     // [N]
  at::Tensor values, columns;  // [N, take]
  at::Tensor softmax;          // [N, C]: the chunk's own softmax, when asked for (ATen ops only)
};

// The chunk's top-`take` of z [N, C] (unscaled) by a stable descending sort: equal values keep the lower column.
void sorted_top(ChunkStats& c, const at::Tensor& z, int64_t take) {
  auto [sorted, order] = at::sort(z, /*stable=*/true, /*dim=*/1, /*descending=*/true);
  c.values = sorted.narrow(1, 0, take);
  c.columns = order.narrow(1, 0, take);
}

// By ATen ops, over z [N, C] (unscaled, in the accumulation type; consumed).
ChunkStats chunk_stats_aten(at::Tensor z, double scale, bool entropy, int64_t take, bool softmax) {
  ChunkStats c;
  if (take > 0) sorted_top(c, z, take);
  if (scale != 1.0) z.mul_(scale);
  c.lse = at::logsumexp(z, {1});  // −inf for a row of −inf logits
  if (entropy) {
    // Σ_v p_v·(lse − z_v): non-negative terms, p_v < e^−87 counted as zero (so −inf logits give 0, not 0·∞), as
    // the row kernels compute it.
    at::Tensor d = z.neg_().add_(c.lse.unsqueeze(1));
    at::Tensor p = d.neg().exp_();
    c.entropy = (softmax ? p * d : p.mul_(d)).masked_fill_(d >= 87, 0.0).sum(1);  // p is kept for the softmax
    if (softmax) c.softmax = p;
  } else if (softmax) {
    c.softmax = z.sub_(c.lse.unsqueeze(1)).exp_();
  }
  // A row of −inf logits has no mass (its exp(−inf − (−inf)) is NaN).
  if (softmax) c.softmax.masked_fill_((c.lse == -std::numeric_limits<double>::infinity()).unsqueeze(1), 0.0);
  return c;
}

#ifdef PREFIX_RL_CUDA_KERNELS
// By the CUDA kernels, over z [N, C] in the model dtype, read in place: one pass for the logsumexp (and entropy),
// one more for the top-K when asked for (ATen's sort beyond the kernel's largest K).
ChunkStats chunk_stats_cuda(const at::Tensor& z, double scale, bool entropy, int64_t take) {
  const int64_t N = z.size(0), C = z.size(1);
  const auto type = cuda_type(z.scalar_type());
  auto floats = z.options().dtype(at::kFloat);
  c10::cuda::CUDAGuard guard(z.device());
  ChunkStats c;
  c.lse = at::empty({N}, floats);
  if (entropy) c.entropy = at::empty({N}, floats);
  check_cuda(cuda::row_lse_entropy(z.data_ptr(), type, N, C, static_cast<float>(scale), c.lse.data_ptr<float>(),
                                   entropy ? c.entropy.data_ptr<float>() : nullptr, current_stream()));
  if (take > cuda::kMaxTopK) {
    sorted_top(c, z.to(at::kFloat), take);
  } else if (take > 0) {
    c.values = at::empty({N, take}, floats);
    c.columns = at::empty({N, take}, z.options().dtype(at::kLong));
    at::Tensor unscaled_lse = at::empty({N}, floats);  // the kernel's by-product at scale 1, unused
    check_cuda(cuda::row_topk(z.data_ptr(), type, N, C, 1.0f, take, nullptr, c.columns.data_ptr<int64_t>(), c.values.data_ptr<float>(), nullptr,
                              unscaled_lse.data_ptr<float>(), current_stream()));
  }
  return c;
}

// Overwrites z [N, C] (model dtype) with the chunk's softmax given its rows' lse [N] (float), zero at the index's
// columns in the chunk [begin, begin + C).
void chunk_softmax_cuda(at::Tensor& z, double scale, const at::Tensor& lse, const at::Tensor& index, int64_t begin) {
  c10::cuda::CUDAGuard guard(z.device());
  check_cuda(cuda::chunk_softmax(z.data_ptr(), cuda_type(z.scalar_type()), z.size(0), z.size(1), static_cast<float>(scale), lse.data_ptr<float>(),
                                 index.data_ptr<int64_t>(), index.size(1), begin, current_stream()));
}
#endif

// Folds one chunk's (lse_c, H_c) [N] (float64) into the rows' running (m, s = Σ_c e^{lse_c − m},
// a = Σ_c e^{lse_c − m}·(H_c − lse_c)), as stream_rows does row by row: a chunk of −inf logits adds nothing, a NaN
// makes the row NaN.
// Returns each row's (rescale, weight) of the fold, for the expectations.
std::pair<at::Tensor, at::Tensor> fold_chunk(at::Tensor& m, at::Tensor& s, at::Tensor& a, const at::Tensor& lse_c, const at::Tensor& h_c) {
  at::Tensor live = lse_c > -std::numeric_limits<double>::infinity();  // false for −inf and NaN
  at::Tensor m_new = at::where(live, at::maximum(m, lse_c), m);
  at::Tensor rescale = at::where(live, at::exp(m - m_new), 1.0);  // where live, m_new is finite: m − m_new is not NaN
  at::Tensor weight = at::where(live, at::exp(lse_c - m_new), 0.0);
  s = at::where(at::isnan(lse_c), std::numeric_limits<double>::quiet_NaN(), s * rescale + weight);
  if (h_c.defined()) a = a * rescale + at::where(live, weight * (h_c - lse_c), 0.0);
  m = m_new;
  return {rescale, weight};
}

// Merges a chunk's top-K (values, global ids [N, take]) into the running list: the running list first in a stable
// descending sort, so equal values keep the lower id (earlier chunks hold lower ids).
void fold_topk(Pass& out, at::Tensor values, at::Tensor ids, int64_t top_k) {
  if (out.top_values.defined()) {
    values = at::cat({out.top_values, values}, 1);
    ids = at::cat({out.top_ids, ids}, 1);
    auto [merged, pick] = at::sort(values, /*stable=*/true, /*dim=*/1, /*descending=*/true);
    const int64_t keep = std::min(top_k, merged.size(1));
    values = merged.narrow(1, 0, keep);
    ids = ids.gather(1, pick.narrow(1, 0, keep));
  }
  out.top_values = values.contiguous();
  out.top_ids = ids.contiguous();
}

// The device pass (CUDA, or ATen ops anywhere): per chunk one GEMM, the gather, and the chunk's per-row statistics
// (ChunkStats) folded into the rows' running state in float64, the same merge as stream_rows'.
Pass stream_chunks(const at::Tensor& hidden, const Head& head, const at::Tensor& index, const Request& r, ChunkPath path) {
  at::NoGradGuard no_grad;
  const int64_t N = hidden.size(0), V = head.vocab();
  const auto acc = acc_type(hidden.scalar_type());
  const double scale = 1.0 / r.temperature;
  auto doubles = hidden.options().dtype(at::kDouble);
  at::Tensor m = at::full({N}, -std::numeric_limits<double>::infinity(), doubles), s = at::zeros({N}, doubles), a = at::zeros({N}, doubles);
  Pass out;
  out.gathered = at::zeros(index.sizes(), hidden.options().dtype(acc));
  for (int64_t begin = 0; begin < V; begin += r.chunk) {
    check_cancelled();
    const int64_t end = std::min(V, begin + r.chunk), take = std::min(r.top_k, end - begin);
    at::Tensor z = chunk_product(hidden, head, begin, end - begin);
    auto [columns, inside] = chunk_columns(index, begin, end);
    out.gathered = at::where(inside, z.gather(1, columns).to(acc).mul_(scale), out.gathered);
    const bool cuda = path == ChunkPath::Cuda;
#ifdef PREFIX_RL_CUDA_KERNELS
    ChunkStats c = cuda ? chunk_stats_cuda(z, scale, r.entropy, take) : chunk_stats_aten(z.to(acc), scale, r.entropy, take, r.expectations);
#else
    ChunkStats c = chunk_stats_aten(z.to(acc), scale, r.entropy, take, r.expectations);
#endif
    if (take > 0) fold_topk(out, c.values.to(acc), c.columns + begin, r.top_k);
    auto [rescale, weight] = fold_chunk(m, s, a, c.lse.to(at::kDouble), r.entropy ? c.entropy.to(at::kDouble) : at::Tensor());
    if (r.expectations) {
      at::Tensor p;
#ifdef PREFIX_RL_CUDA_KERNELS
      if (cuda) {
        chunk_softmax_cuda(z, scale, c.lse, index, begin);  // in place: z is the chunk's softmax now
        p = z;
      }
#endif
      if (!cuda) {
        p = c.softmax.to(hidden.scalar_type());
        // Zeroed column by column of the index: a clamped column of an id outside the chunk writes back its own
        // value, and after a zero has been written it reads that zero.
        for (int64_t k = 0; k < index.size(1); ++k) {
          const at::Tensor column = columns.narrow(1, k, 1);
          p.scatter_(1, column, at::where(inside.narrow(1, k, 1), at::zeros({}, p.options()), p.gather(1, column)));
        }
      }
      fold_expectations(out, p, head, begin, rescale.to(acc), weight.to(acc));
    }
  }
  out.lse = m + at::log(s);  // −inf for a row of −inf logits
  if (r.entropy) out.entropy = (out.lse + a / s).to(acc);
  finish_expectations(out, s);
  return out;
}

// One streamed pass over the vocabulary, no graph: hidden [N, H], the head, index [N, K] int64.
Pass stream(const at::Tensor& hidden, const Head& head, const at::Tensor& index, const Request& r) {
  const ChunkPath path = chunk_path(hidden);
  return path == ChunkPath::Rows ? stream_rows(hidden, head, index, r) : stream_chunks(hidden, head, index, r, path);
}

// A chunk's ∂L/∂z on the CPU, written over its logits z [N, C] (the model dtype) by the row kernel.
void chunk_grad_rows(at::Tensor& z, int64_t begin, const at::Tensor& index, const at::Tensor& lse, const at::Tensor& g, const at::Tensor& g_sum,
                     const at::Tensor& g_entropy, const at::Tensor& entropy, double temperature) {
  const int64_t N = z.size(0), C = z.size(1), K = index.size(1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, z.scalar_type(), "head_grad_rows", [&] {
    using A = kernels::acc_t<scalar_t>;
    const A scale = static_cast<A>(1.0 / temperature);
    scalar_t* x = z.data_ptr<scalar_t>();
    const int64_t* ids = index.data_ptr<int64_t>();
    const A *gp = g.data_ptr<A>(), *g_sum_p = g_sum.data_ptr<A>(), *lse_p = lse.data_ptr<A>();
    const A* gh = g_entropy.defined() ? g_entropy.data_ptr<A>() : nullptr;
    const A* h = entropy.defined() ? entropy.data_ptr<A>() : nullptr;
    parallel_rows(N, 4, [&](int64_t n) {
      thread_local std::vector<int64_t> cols;
      thread_local std::vector<A> grads;
      cols.clear();
      grads.clear();
      for (int64_t k = 0; k < K; ++k) {
        const int64_t id = ids[n * K + k];
        if (id >= begin && id < begin + C) cols.push_back(id - begin), grads.push_back(gp[n * K + k]);
      }
      kernels::row_head_backward(x + n * C, C, scale, lse_p[n], g_sum_p[n], gh ? gh[n] : A(0), h ? h[n] : A(0), cols.data(), grads.data(),
                                 static_cast<int64_t>(cols.size()));
    });
  });
}

#ifdef PREFIX_RL_CUDA_KERNELS
// The same on CUDA, in place over z [N, C] in the model dtype (the kernel also adds the chunk's index entries).
void chunk_grad_cuda(at::Tensor& z, int64_t begin, const at::Tensor& index, const at::Tensor& lse, const at::Tensor& g, const at::Tensor& g_sum,
                     const at::Tensor& g_entropy, const at::Tensor& entropy, double temperature) {
  c10::cuda::CUDAGuard guard(z.device());
  check_cuda(cuda::head_chunk_backward(z.data_ptr(), cuda_type(z.scalar_type()), z.size(0), z.size(1), static_cast<float>(1.0 / temperature),
                                       lse.data_ptr<float>(), g_sum.data_ptr<float>(), g_entropy.defined() ? g_entropy.data_ptr<float>() : nullptr,
                                       entropy.defined() ? entropy.data_ptr<float>() : nullptr, index.data_ptr<int64_t>(), g.data_ptr<float>(),
                                       index.size(1), begin, current_stream()));
}
#endif

// The same with ATen ops on the chunk's scaled logits z [N, C] in the accumulation type (one buffer, two with the
// entropy's gradient): −(Σg)·p_v + g_H·p_v·(lse − z_v − H), plus g at the chunk's index entries, times scale.
at::Tensor chunk_grad_aten(at::Tensor z, int64_t begin, const at::Tensor& index, const at::Tensor& lse, const at::Tensor& g, const at::Tensor& g_sum,
                           const at::Tensor& g_entropy, const at::Tensor& entropy, double scale) {
  const int64_t end = begin + z.size(1);
  if (scale != 1.0) z.mul_(scale);
  at::Tensor dz;
  if (g_entropy.defined()) {
    at::Tensor t = z.neg_().add_(lse.unsqueeze(1));  // lse − z ≥ 0
    at::Tensor p = t.neg().exp_();
    dz = t.sub_(entropy.unsqueeze(1)).mul_(g_entropy.unsqueeze(1)).sub_(g_sum.unsqueeze(1)).mul_(p);
    dz.masked_fill_(p == 0, 0.0);  // a −inf logit: p = 0 while lse − z = ∞
  } else {
    dz = z.sub_(lse.unsqueeze(1)).exp_().mul_(g_sum.neg().unsqueeze(1));
  }
  auto [columns, inside] = chunk_columns(index, begin, end);
  dz.scatter_add_(1, columns, at::where(inside, g, at::zeros_like(g)));
  if (scale != 1.0) dz.mul_(scale);
  return dz;
}

class HeadLogprobsFn : public torch::autograd::Function<HeadLogprobsFn> {
 public:
  // hidden [N, H], weight [V, H], a LoRA's hidden_r [N, r] and B [V, r] (r = 0: none), index [N, K] int64 →
  // {log-probs [N, K] in out_type, entropy [N] if asked for}. With `expectations` (a frozen head, see head_logprobs)
  // the pass also accumulates Σ_{v ∉ index} p_v·W_v (and ·B_v) for the backward.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                                                const at::Tensor& lora_hidden, const at::Tensor& lora_weight, const at::Tensor& index,
                                                double temperature, int64_t chunk, bool entropy, at::ScalarType out_type, bool expectations) {
    Pass pass = stream(hidden, Head{weight, lora_hidden, lora_weight}, index, Request{temperature, chunk, entropy, 0, expectations});
    const at::Tensor exact = pass.gathered.to(at::kDouble) - pass.lse.unsqueeze(1);
    at::Tensor logprobs = exact.to(out_type);  // one rounding
    ctx->save_for_backward({hidden, weight, lora_hidden, lora_weight, index, pass.lse, entropy ? pass.entropy : at::Tensor(), pass.expected_weight,
                            pass.expected_lora, expectations ? exact : at::Tensor()});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["expectations"] = expectations;
    // An output nobody differentiated (the entropy as a metric) reaches the backward undefined, not as zeros: a
    // frozen head then keeps its backward from the expectations, and no zero term is streamed.
    ctx->set_materialize_grads(false);
    if (!entropy) return {logprobs};
    return {logprobs, pass.entropy};
  }

  // Per chunk, with z the scaled logits and p = softmax(z): ∂L/∂z_v = Σ_k g_k·[v = index_k] − (Σ_k g_k)·p_v
  // + g_H·p_v·(lse − z_v − H); then ∂L/∂hidden += scale·∂L/∂z · W_chunk and ∂L/∂W_chunk = scale·∂L/∂zᵀ · hidden
  // (with a LoRA likewise ∂L/∂hidden_r += scale·∂L/∂z · B_chunk and ∂L/∂B_chunk = scale·∂L/∂zᵀ · hidden_r).
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const Head head{saved[1], saved[2], saved[3]};
    const at::Tensor &hidden = saved[0], &index = saved[4];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const int64_t V = head.vocab();
    const auto acc = acc_type(hidden.scalar_type());
    at::Tensor lse = saved[5].to(acc).contiguous();
    at::Tensor g = grads[0].defined() ? grads[0].to(acc).contiguous() : at::zeros(index.sizes(), lse.options());
    at::Tensor g_sum = g.sum(1).contiguous();
    const bool with_entropy = grads.size() > 1 && grads[1].defined();
    at::Tensor g_entropy = with_entropy ? grads[1].to(acc).contiguous() : at::Tensor();
    at::Tensor entropy = with_entropy ? saved[6].contiguous() : at::Tensor();
    const bool need_hidden = ctx->needs_input_grad(0), need_weight = ctx->needs_input_grad(1);
    const bool need_lora_hidden = head.has_lora() && ctx->needs_input_grad(2), need_lora_weight = head.has_lora() && ctx->needs_input_grad(3);
    auto in_dtype = [&](const at::Tensor& grad) { return grad.defined() ? grad.to(hidden.scalar_type()) : grad; };
    auto outputs = [&](const at::Tensor& grad_hidden, const at::Tensor& grad_weight, const at::Tensor& grad_lora_hidden,
                       const at::Tensor& grad_lora_weight) -> torch::autograd::variable_list {
      return {
          in_dtype(grad_hidden), grad_weight, in_dtype(grad_lora_hidden), grad_lora_weight, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
          at::Tensor(),          at::Tensor()};
    };
    if (ctx->saved_data["expectations"].toBool() && !with_entropy) {
      // A frozen head: ∂L/∂hidden = scale·(Σ_k c_k·W_{index_k} − g_sum·E), E = Σ_{v ∉ index} p_v·W_v from the forward
      // and c_k = g_k − g_sum·p_k / m_k, m_k the count of index_k in its row (so each distinct token's own −g_sum·p
      // enters once), formed in float64 from the forward's log-probs: a confident row's g·(1 − p) does not cancel.
      // Likewise ∂L/∂hidden_r with B. No vocabulary GEMM.
      const at::Tensor p = saved[9].exp();
      const at::Tensor count = (index.unsqueeze(2) == index.unsqueeze(1)).sum(2).to(at::kDouble);
      const at::Tensor coef = (g.to(at::kDouble) - g_sum.to(at::kDouble).unsqueeze(1) * p / count).to(acc);
      const at::Tensor none = (g == 0).all(1).unsqueeze(1);  // rows with no gradient: exact zeros, as the recompute gives
      const double scale = 1.0 / temperature;
      auto grad_through = [&](const at::Tensor& table, const at::Tensor& expected) {
        at::Tensor grad = expected * (-g_sum).unsqueeze(1);
        for (int64_t k = 0; k < index.size(1); ++k) {
          grad.add_(table.index_select(0, index.select(1, k)).to(acc).mul_(coef.select(1, k).unsqueeze(1)));
        }
        return grad.mul_(scale).masked_fill_(none, 0.0);
      };
      return outputs(need_hidden ? grad_through(head.weight, saved[7]) : at::Tensor(), at::Tensor(),
                     need_lora_hidden ? grad_through(head.lora_weight, saved[8]) : at::Tensor(), at::Tensor());
    }
    const ChunkPath path = chunk_path(hidden);
    auto zeros_acc = [&](const at::Tensor& like) { return at::zeros(like.sizes(), like.options().dtype(acc)); };
    at::Tensor grad_hidden = need_hidden ? zeros_acc(hidden) : at::Tensor();
    at::Tensor grad_lora_hidden = need_lora_hidden ? zeros_acc(head.lora_hidden) : at::Tensor();
    // Every chunk writes its rows of the weights' gradients.
    at::Tensor grad_weight = need_weight ? at::empty(head.weight.sizes(), head.weight.options()) : at::Tensor();
    at::Tensor grad_lora_weight = need_lora_weight ? at::empty(head.lora_weight.sizes(), head.lora_weight.options()) : at::Tensor();
    // grad += dz · w, accumulated over chunks in float even where the GEMM itself runs in reduced precision.
    auto accumulate = [&](at::Tensor& grad, const at::Tensor& dz, const at::Tensor& w) {
      if (acc == hidden.scalar_type()) {
        grad.addmm_(dz, w);
      } else {
        grad.add_(at::mm(dz, w));
      }
    };
    for (int64_t begin = 0; begin < V; begin += chunk) {
      check_cancelled();
      const int64_t end = std::min(V, begin + chunk), C = end - begin;
      at::Tensor dz;
      if (path == ChunkPath::Rows) {
        dz = chunk_product(hidden, head, begin, C);  // overwritten with its gradient
        chunk_grad_rows(dz, begin, index, lse, g, g_sum, g_entropy, entropy, temperature);
#ifdef PREFIX_RL_CUDA_KERNELS
      } else if (path == ChunkPath::Cuda) {
        dz = chunk_product(hidden, head, begin, C);  // likewise
        chunk_grad_cuda(dz, begin, index, lse, g, g_sum, g_entropy, entropy, temperature);
#endif
      } else {
        dz = chunk_grad_aten(chunk_logits(hidden, head, begin, end, acc), begin, index, lse, g, g_sum, g_entropy, entropy, 1.0 / temperature)
                 .to(hidden.scalar_type());
      }
      if (need_hidden) accumulate(grad_hidden, dz, head.weight.narrow(0, begin, C));
      if (need_lora_hidden) accumulate(grad_lora_hidden, dz, head.lora_weight.narrow(0, begin, C));
      if (need_weight) {
        at::Tensor rows_out = grad_weight.narrow(0, begin, C);
        at::mm_out(rows_out, dz.t(), hidden);
      }
      if (need_lora_weight) {
        at::Tensor rows_out = grad_lora_weight.narrow(0, begin, C);
        at::mm_out(rows_out, dz.t(), head.lora_hidden);
      }
    }
    return outputs(grad_hidden, grad_weight, grad_lora_hidden, grad_lora_weight);
  }
};

// Shared by both entry points: hidden [..., H] floating, weight [V, H] of its dtype and device, a LoRA term of
// matching shapes (or none), a valid temperature and chunk size.
void check_head(const at::Tensor& hidden, const at::Tensor& weight, const HeadLora& lora, double temperature, int64_t chunk) {
  if (!hidden.defined() || !weight.defined()) invalid_argument("the fused LM head needs hidden states and the head's weight");
  if (!at::isFloatingType(hidden.scalar_type())) invalid_argument("hidden must be a floating tensor, got " + dtype_name(hidden.scalar_type()));
  if (hidden.dim() < 2) invalid_argument("hidden must have shape [..., H], got " + c10::str(hidden.sizes()));
  if (weight.dim() != 2 || weight.size(1) != hidden.size(-1)) {
    invalid_argument("weight must be [V, H] with H = " + std::to_string(hidden.size(-1)) + " (hidden's last dim), got " + c10::str(weight.sizes()));
  }
  if (weight.scalar_type() != hidden.scalar_type()) {
    invalid_argument("weight is " + dtype_name(weight.scalar_type()) + " but hidden is " + dtype_name(hidden.scalar_type()));
  }
  if (weight.size(0) == 0) invalid_argument("weight has an empty vocabulary (V = 0)");
  check_same_device(weight, "weight", hidden, "hidden states");
  if (!(temperature > 0) || !std::isfinite(temperature)) invalid_argument("temperature must be a finite number > 0");
  if (chunk < 1) invalid_argument("chunkSize must be a positive integer, got " + std::to_string(chunk));
  if (!lora.defined()) return;
  if (!lora.hidden.defined() || !lora.weight.defined()) invalid_argument("the head's LoRA term needs both loraHidden and loraWeight");
  const at::Tensor &u = lora.hidden, &b = lora.weight;
  if (b.dim() != 2 || b.size(0) != weight.size(0) || b.size(1) < 1) {
    invalid_argument("loraWeight must be [V, r] with V = " + std::to_string(weight.size(0)) + ", got " + c10::str(b.sizes()));
  }
  if (u.dim() != hidden.dim() || u.sizes().slice(0, u.dim() - 1) != hidden.sizes().slice(0, hidden.dim() - 1) || u.size(-1) != b.size(1)) {
    invalid_argument("loraHidden has shape " + c10::str(u.sizes()) + "; it must be hidden's shape " + c10::str(hidden.sizes()) +
                     " with the last dim replaced by r = " + std::to_string(b.size(1)));
  }
  for (const auto& [tensor, name] : {std::pair{&u, "loraHidden"}, std::pair{&b, "loraWeight"}}) {
    if (tensor->scalar_type() != hidden.scalar_type()) {
      invalid_argument(std::string(name) + " is " + dtype_name(tensor->scalar_type()) + " but hidden is " + dtype_name(hidden.scalar_type()));
    }
    check_same_device(*tensor, name, hidden, "hidden states");
  }
}

// index as int64, contiguous, every id in [0, V).
at::Tensor checked_ids(const at::Tensor& index, const char* name, int64_t V) {
  if (!index.defined()) invalid_argument(std::string(name) + " is required");
  if (index.scalar_type() != at::kLong && index.scalar_type() != at::kInt) invalid_argument(std::string(name) + " must be an int64 or int32 tensor");
  at::Tensor ids = index.to(at::kLong).contiguous();
  check_index_range(ids, V);
  return ids;
}

}  // namespace

HeadLogprobs head_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& index, double temperature, int64_t chunk,
                           bool entropy, std::optional<at::ScalarType> out_type, const HeadLora& lora, bool entropy_gradient) {
  check_head(hidden, weight, lora, temperature, chunk);
  if (!index.defined()) invalid_argument("index is required");
  if (index.dim() != hidden.dim() || index.sizes().slice(0, index.dim() - 1) != hidden.sizes().slice(0, hidden.dim() - 1)) {
    invalid_argument("index has shape " + c10::str(index.sizes()) + "; it must be hidden's shape " + c10::str(hidden.sizes()) +
                     " with the last dim replaced by K");
  }
  check_same_device(index, "index", hidden, "hidden states");
  const auto type = out_type.value_or(acc_type(hidden.scalar_type()));
  if (type != at::kFloat && type != at::kDouble) invalid_argument("log-probs are float32 or float64, got " + dtype_name(type));
  const int64_t V = weight.size(0), H = hidden.size(-1), K = index.size(-1);
  at::Tensor ids = checked_ids(index, "index", V).reshape({-1, K});
  // Without an adapter, a rank-0 term: an autograd Function's inputs must all be defined tensors.
  at::Tensor lora_hidden = lora.defined() ? lora.hidden.reshape({-1, lora.hidden.size(-1)}).contiguous() : at::empty({0, 0}, hidden.options());
  at::Tensor lora_weight = lora.defined() ? lora.weight.contiguous() : at::empty({0, 0}, weight.options());
  // A frozen head (no gradient to W, nor to B) gets only ∂L/∂hidden (and ∂L/∂hidden_r) from the backward, which then
  // needs Σ_v p_v·W_v and no logits: the forward accumulates it (one GEMM per chunk, what the backward's recompute
  // would cost) and the backward runs no vocabulary GEMM, two head GEMMs in all instead of three. Not when the
  // entropy's gradient is to be taken (its term needs the logits again), nor under PREFIX_RL_HEAD_RECOMPUTE=1.
  const bool frozen = !weight.requires_grad() && !(lora.defined() && lora.weight.requires_grad());
  const bool trained_input = hidden.requires_grad() || (lora.defined() && lora.hidden.requires_grad());
  const char* recompute = env_switch("PREFIX_RL_HEAD_RECOMPUTE", {"0", "1"});
  const bool expectations =
      at::GradMode::is_enabled() && frozen && trained_input && !(entropy && entropy_gradient) && !(recompute && std::strcmp(recompute, "1") == 0);
  auto outputs = HeadLogprobsFn::apply(hidden.reshape({-1, H}).contiguous(), weight.contiguous(), lora_hidden, lora_weight, ids, temperature, chunk,
                                       entropy, type, expectations);
  HeadLogprobs out;
  out.logprobs = outputs[0].reshape(index.sizes());
  if (entropy) out.entropy = outputs[1].reshape(index.sizes().slice(0, index.dim() - 1));
  return out;
}

CandidateSet head_candidate_set(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& tokens, const at::Tensor& mask,
                                const CandidateOptions& options, int64_t chunk, const HeadLora& lora) {
  check_head(hidden, weight, lora, options.temperature, chunk);
  if (hidden.dim() != 3) invalid_argument("hidden must be [B, T, H], got " + c10::str(hidden.sizes()));
  const int64_t B = hidden.size(0), T = hidden.size(1), H = hidden.size(2), V = weight.size(0), N = B * T;
  if (!tokens.defined() || tokens.sizes() != at::IntArrayRef({B, T})) {
    invalid_argument("tokens must be [B, T] = " + c10::str(hidden.sizes().slice(0, 2)) + ", got " +
                     (tokens.defined() ? c10::str(tokens.sizes()) : "none"));
  }
  if (!mask.defined() || mask.sizes() != tokens.sizes()) invalid_argument("mask must have the shape of tokens " + c10::str(tokens.sizes()));
  check_same_device(tokens, "tokens", hidden, "hidden states");
  check_same_device(mask, "mask", hidden, "hidden states");
  check_candidate_options(options, V);
  at::Tensor ids = checked_ids(tokens, "tokens", V);
  at::NoGradGuard no_grad;
  at::Tensor h = hidden.detach().reshape({N, H}).contiguous();
  Head head{weight.detach().contiguous()};
  if (lora.defined()) head = Head{head.weight, lora.hidden.detach().reshape({N, -1}).contiguous(), lora.weight.detach().contiguous()};
  Pass pass = stream(h, head, ids.reshape({N, 1}), Request{options.temperature, chunk, false, options.k, false});
  // Scaled by the same multiply as the gathered logits: a candidate's log-prob is head_logprobs' at that token.
  at::Tensor top_values = options.temperature == 1.0 ? pass.top_values : pass.top_values * (1.0 / options.temperature);
  return candidates_from_topk(pass.top_ids, top_values, pass.gathered.squeeze(1), pass.lse, ids, mask, options, hidden.device());
}

}  // namespace prefix_rl
