#include "row_kernels.h"

#include "ops/simd_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace prefix_rl::kernels {
namespace {

constexpr int kLanes = 16;  // independent accumulators: lets the compiler vectorise reductions without -ffast-math
#define PREFIX_RL_INLINE inline __attribute__((always_inline))

PREFIX_RL_INLINE float to_acc(float v) { return v; }
PREFIX_RL_INLINE double to_acc(double v) { return v; }
PREFIX_RL_INLINE float to_acc(c10::BFloat16 v) { return static_cast<float>(v); }
PREFIX_RL_INLINE float to_acc(c10::Half v) { return static_cast<float>(v); }

// exp for float with ~2 ulp error, branch-free so loops over it vectorise (std::exp does not).
// Inputs here are ≤ 0 (x − max); below −87 the result flushes to ~1e-38, which is zero for these sums.
PREFIX_RL_INLINE float fast_exp(float x) {
  x = std::max(x, -87.0f);
  // Round to nearest integer with the 1.5·2^23 trick (vectorises; nearbyint may not).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
  // Minimax polynomial for exp(r) on [−ln2/2, ln2/2].
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &p, sizeof(bits));
  bits += static_cast<int32_t>(static_cast<uint32_t>(static_cast<int32_t>(n)) << 23);  // 2^n; unsigned: n < 0 is no UB
  std::memcpy(&p, &bits, sizeof(bits));
  return p;
}
PREFIX_RL_INLINE double fast_exp(double x) { return std::exp(x); }  // fp64 rows are for exactness, not speed

template <typename T>
PREFIX_RL_INLINE acc_t<T> row_max(const T* x, int64_t V, acc_t<T> scale) {
  using A = acc_t<T>;
  A lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -std::numeric_limits<A>::infinity());
  int64_t v = 0;
  for (; v + kLanes <= V; v += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] = std::max(lanes[l], to_acc(x[v + l]) * scale);
  }
  A best = -std::numeric_limits<A>::infinity();
  for (; v < V; ++v) best = std::max(best, to_acc(x[v]) * scale);
  for (int l = 0; l < kLanes; ++l) best = std::max(best, lanes[l]);
  return best;
}

template <typename T>
PREFIX_RL_INLINE acc_t<T> row_sumexp(const T* x, int64_t V, acc_t<T> scale, acc_t<T> shift) {
  using A = acc_t<T>;
  A lanes[kLanes] = {};
  int64_t v = 0;
  for (; v + kLanes <= V; v += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += fast_exp(to_acc(x[v + l]) * scale - shift);
  }
  A total = 0;
  for (; v < V; ++v) total += fast_exp(to_acc(x[v]) * scale - shift);
  for (int l = 0; l < kLanes; ++l) total += lanes[l];
  return total;
}

// Whether a row of the fused head's backward has no gradient at all (a masked row): its chunk is exactly zero.
template <typename A>
PREFIX_RL_INLINE bool no_head_gradient(A g_sum, A g_entropy, const A* g, int64_t k) {
  bool none = g_sum == 0 && g_entropy == 0;
  for (int64_t j = 0; j < k && none; ++j) none = g[j] == 0;
  return none;
}

// row_head_backward, element by element (float64 rows, and any row with an entropy gradient).
template <typename T>
void head_backward_generic(T* x, int64_t C, acc_t<T> scale, acc_t<T> lse, acc_t<T> g_sum, acc_t<T> g_entropy, acc_t<T> entropy, const int64_t* cols,
                           const acc_t<T>* g, int64_t k) {
  using A = acc_t<T>;
  for (int64_t v = 0; v < C; ++v) {
    const A d = lse - to_acc(x[v]) * scale;  // −log p_v ≥ 0; p_v counts as 0 below e^−87 (and for d = +inf)
    x[v] = static_cast<T>(d < A(87) ? scale * fast_exp(-d) * (g_entropy * (d - entropy) - g_sum) : A(0));
  }
  for (int64_t j = 0; j < k; ++j) x[cols[j]] = static_cast<T>(to_acc(x[cols[j]]) + scale * g[j]);
}

}  // namespace

template <typename T>
double row_logsumexp(const T* x, int64_t V, acc_t<T> scale) {
  const acc_t<T> max = row_max(x, V, scale);
  if (!std::isfinite(max)) return max;  // ±inf or NaN rows propagate; callers validate inputs
  return static_cast<double>(max) + std::log(static_cast<double>(row_sumexp(x, V, scale, max)));
}

template <typename T>
void row_topk(const T* x, int64_t V, int64_t k, int64_t* ids, acc_t<T>* values) {
  if (k <= 0) return;
  TopKList<acc_t<T>> top{k, ids, values};
  for (int64_t v = 0; v < V; ++v) top.offer(to_acc(x[v]), v);
}

template <typename T>
void row_logprob_backward(const T* x, int64_t V, acc_t<T> scale, acc_t<T> lse, const int64_t* ids, const acc_t<T>* g, int64_t k, T* grad) {
  using A = acc_t<T>;
  A g_sum = 0;
  for (int64_t j = 0; j < k; ++j) g_sum += g[j];
  if (g_sum == 0) {
    bool all_zero = true;
    for (int64_t j = 0; j < k; ++j) all_zero = all_zero && g[j] == 0;
    if (all_zero) {  // masked rows: exactly zero, without touching x
      std::fill(grad, grad + V, T(0));
      return;
    }
  }
  const A coef = -g_sum * scale;
  for (int64_t v = 0; v < V; ++v) grad[v] = static_cast<T>(coef * fast_exp(to_acc(x[v]) * scale - lse));
  for (int64_t j = 0; j < k; ++j) {
    const int64_t v = ids[j];
    grad[v] = static_cast<T>(to_acc(grad[v]) + scale * g[j]);
  }
}

// p·d with d = lse − z ≥ 0 and p = e^−d; zero once p underflows (also for d = +inf, where p·d would be NaN).
template <typename A>
PREFIX_RL_INLINE A entropy_term(A d, A times) {
  return d < A(87) ? fast_exp(-d) * times : A(0);
}

template <typename T>
acc_t<T> row_entropy(const T* x, int64_t V, acc_t<T> scale, acc_t<T> lse) {
  using A = acc_t<T>;
  A lanes[kLanes] = {};
  int64_t v = 0;
  for (; v + kLanes <= V; v += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const A d = lse - to_acc(x[v + l]) * scale;
      lanes[l] += entropy_term(d, d);
    }
  }
  A total = 0;
  for (; v < V; ++v) {
    const A d = lse - to_acc(x[v]) * scale;
    total += entropy_term(d, d);
  }
  for (int l = 0; l < kLanes; ++l) total += lanes[l];
  return total;
}

template <typename T>
void row_entropy_backward(const T* x, int64_t V, acc_t<T> scale, acc_t<T> lse, acc_t<T> entropy, acc_t<T> g, T* grad) {
  using A = acc_t<T>;
  if (g == 0) {  // masked rows: exactly zero, without touching x
    std::fill(grad, grad + V, T(0));
    return;
  }
  const A coef = g * scale;
  for (int64_t v = 0; v < V; ++v) {
    const A d = lse - to_acc(x[v]) * scale;
    grad[v] = static_cast<T>(coef * entropy_term(d, d - entropy));
  }
}

// float rows, the hot path: explicit AVX-512 / AVX2 kernels (simd_kernels.cc), chosen once at load time.
template <>
double row_logsumexp<float>(const float* x, int64_t V, float scale) {
  return simd::kernels().logsumexp(x, V, scale);
}

template <>
void row_topk<float>(const float* x, int64_t V, int64_t k, int64_t* ids, float* values) {
  simd::kernels().topk(x, V, k, ids, values);
}

template <>
void row_logprob_backward<float>(const float* x, int64_t V, float scale, float lse, const int64_t* ids, const float* g, int64_t k, float* grad) {
  float g_sum = 0;
  bool all_zero = true;
  for (int64_t j = 0; j < k; ++j) g_sum += g[j], all_zero = all_zero && g[j] == 0;
  if (all_zero) {
    std::fill(grad, grad + V, 0.0f);
    return;
  }
  simd::kernels().scaled_softmax(x, V, scale, lse, -g_sum * scale, grad);
  for (int64_t j = 0; j < k; ++j) grad[ids[j]] += scale * g[j];
}

// bf16 and fp16 rows take the float kernels too: each row is converted (exactly) into a per-thread float buffer — at
// V = 151,936 that is 600 KiB, which stays in L2 — and the vector code runs on it. Converting first costs one pass
// over L2-resident data; the element-by-element conversions inside the generic loops kept them from vectorising.
namespace {

template <int Slot, typename T>
float* float_buffer(int64_t V) {
  thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < V) buffer.resize(static_cast<size_t>(V));
  return buffer.data();
}

template <typename T>
const float* as_float(const T* x, int64_t V) {
  float* out = float_buffer<0, T>(V);
  for (int64_t v = 0; v < V; ++v) out[v] = static_cast<float>(x[v]);
  return out;
}

template <typename T>
double reduced_logsumexp(const T* x, int64_t V, float scale) {
  return simd::kernels().logsumexp(as_float(x, V), V, scale);
}

template <typename T>
void reduced_topk(const T* x, int64_t V, int64_t k, int64_t* ids, float* values) {
  simd::kernels().topk(as_float(x, V), V, k, ids, values);  // float order = the 16-bit values' order, ties included
}

// The float kernel's dense term rounded once to T, then each gathered term added: the generic kernel's order.
// The fused head's backward on a 16-bit chunk row without an entropy gradient: converted into the float buffer, the
// vector kernel, then rounded back into x.
template <typename T>
void reduced_head_backward(T* x, int64_t C, float scale, float lse, float g_sum, float g_entropy, float entropy, const int64_t* cols, const float* g,
                           int64_t k) {
  if (no_head_gradient(g_sum, g_entropy, g, k)) {
    std::fill(x, x + C, T(0));
    return;
  }
  if (g_entropy != 0) return head_backward_generic(x, C, scale, lse, g_sum, g_entropy, entropy, cols, g, k);
  float* dense = float_buffer<1, T>(C);
  simd::kernels().scaled_softmax(as_float(x, C), C, scale, lse, -g_sum * scale, dense);
  for (int64_t v = 0; v < C; ++v) x[v] = static_cast<T>(dense[v]);
  for (int64_t j = 0; j < k; ++j) x[cols[j]] = static_cast<T>(static_cast<float>(x[cols[j]]) + scale * g[j]);
}

template <typename T>
void reduced_logprob_backward(const T* x, int64_t V, float scale, float lse, const int64_t* ids, const float* g, int64_t k, T* grad) {
  float g_sum = 0;
  bool all_zero = true;
  for (int64_t j = 0; j < k; ++j) g_sum += g[j], all_zero = all_zero && g[j] == 0;
  if (all_zero) {
    std::fill(grad, grad + V, T(0));
    return;
  }
  const float* xf = as_float(x, V);  // read before grad (which may be x itself) is written
  float* dense = float_buffer<1, T>(V);
  simd::kernels().scaled_softmax(xf, V, scale, lse, -g_sum * scale, dense);
  for (int64_t v = 0; v < V; ++v) grad[v] = static_cast<T>(dense[v]);
  for (int64_t j = 0; j < k; ++j) grad[ids[j]] = static_cast<T>(static_cast<float>(grad[ids[j]]) + scale * g[j]);
}

}  // namespace

template <typename T>
void row_head_backward(T* x, int64_t C, acc_t<T> scale, acc_t<T> lse, acc_t<T> g_sum, acc_t<T> g_entropy, acc_t<T> entropy, const int64_t* cols,
                       const acc_t<T>* g, int64_t k) {
  if (no_head_gradient(g_sum, g_entropy, g, k)) {
    std::fill(x, x + C, T(0));
    return;
  }
  head_backward_generic(x, C, scale, lse, g_sum, g_entropy, entropy, cols, g, k);
}
template void row_head_backward<double>(double*, int64_t, double, double, double, double, double, const int64_t*, const double*, int64_t);

// float rows without an entropy gradient: the vector scaled-softmax kernel, in place.
template <>
void row_head_backward<float>(float* x, int64_t C, float scale, float lse, float g_sum, float g_entropy, float entropy, const int64_t* cols,
                              const float* g, int64_t k) {
  if (no_head_gradient(g_sum, g_entropy, g, k)) {
    std::fill(x, x + C, 0.0f);
  } else if (g_entropy != 0) {
    head_backward_generic(x, C, scale, lse, g_sum, g_entropy, entropy, cols, g, k);
  } else {
    simd::kernels().scaled_softmax(x, C, scale, lse, -g_sum * scale, x);
    for (int64_t j = 0; j < k; ++j) x[cols[j]] += scale * g[j];
  }
}

template <typename T>
void row_softmax(T* x, int64_t C, acc_t<T> scale, acc_t<T> lse) {
  if (lse == -std::numeric_limits<acc_t<T>>::infinity()) {
    std::fill(x, x + C, T(0));
  } else if constexpr (std::is_same_v<T, float>) {
    simd::kernels().scaled_softmax(x, C, scale, lse, 1.0f, x);
  } else if constexpr (std::is_same_v<T, double>) {
    for (int64_t v = 0; v < C; ++v) x[v] = std::exp(x[v] * scale - lse);
  } else {
    float* dense = float_buffer<1, T>(C);
    simd::kernels().scaled_softmax(as_float(x, C), C, scale, lse, 1.0f, dense);
    for (int64_t v = 0; v < C; ++v) x[v] = static_cast<T>(dense[v]);
  }
}
template void row_softmax<float>(float*, int64_t, float, float);
template void row_softmax<double>(double*, int64_t, double, double);
template void row_softmax<c10::BFloat16>(c10::BFloat16*, int64_t, float, float);
template void row_softmax<c10::Half>(c10::Half*, int64_t, float, float);

#define PREFIX_RL_REDUCED_PRECISION(T)                                                                                                  \
  template <>                                                                                                                           \
  double row_logsumexp<T>(const T* x, int64_t V, float scale) {                                                                         \
    return reduced_logsumexp(x, V, scale);                                                                                              \
  }                                                                                                                                     \
  template <>                                                                                                                           \
  void row_topk<T>(const T* x, int64_t V, int64_t k, int64_t* ids, float* values) {                                                     \
    reduced_topk(x, V, k, ids, values);                                                                                                 \
  }                                                                                                                                     \
  template <>                                                                                                                           \
  void row_logprob_backward<T>(const T* x, int64_t V, float scale, float lse, const int64_t* ids, const float* g, int64_t k, T* grad) { \
    reduced_logprob_backward(x, V, scale, lse, ids, g, k, grad);                                                                        \
  }                                                                                                                                     \
  template <>                                                                                                                           \
  void row_head_backward<T>(T * x, int64_t C, float scale, float lse, float g_sum, float g_entropy, float entropy, const int64_t* cols, \
                            const float* g, int64_t k) {                                                                                \
    reduced_head_backward(x, C, scale, lse, g_sum, g_entropy, entropy, cols, g, k);                                                     \
  }
PREFIX_RL_REDUCED_PRECISION(c10::BFloat16)
PREFIX_RL_REDUCED_PRECISION(c10::Half)

#define PREFIX_RL_INSTANTIATE(T)                                              \
  template double row_logsumexp<T>(const T*, int64_t, acc_t<T>);              \
  template void row_topk<T>(const T*, int64_t, int64_t, int64_t*, acc_t<T>*); \
  template void row_logprob_backward<T>(const T*, int64_t, acc_t<T>, acc_t<T>, const int64_t*, const acc_t<T>*, int64_t, T*);
PREFIX_RL_INSTANTIATE(double)

// The entropy kernels have no hand-vectorised float version (the lane loops vectorise as written).
#define PREFIX_RL_INSTANTIATE_ENTROPY(T)                                   \
  template acc_t<T> row_entropy<T>(const T*, int64_t, acc_t<T>, acc_t<T>); \
  template void row_entropy_backward<T>(const T*, int64_t, acc_t<T>, acc_t<T>, acc_t<T>, acc_t<T>, T*);
PREFIX_RL_INSTANTIATE_ENTROPY(float)
PREFIX_RL_INSTANTIATE_ENTROPY(double)
PREFIX_RL_INSTANTIATE_ENTROPY(c10::BFloat16)
PREFIX_RL_INSTANTIATE_ENTROPY(c10::Half)

}  // namespace prefix_rl::kernels
