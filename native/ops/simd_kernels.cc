#include "ops/simd_kernels.h"

#include "ops/row_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace prefix_rl::kernels::simd {
namespace {

// Cephes-style expf: x = n·ln2 + r, exp(r) by a degree-6 polynomial on [−ln2/2, ln2/2], 2^n through the exponent
// bits. ~2 ulp. Inputs are clamped at −87 (exp(−87) ≈ 1.6e-38: zero for these sums) and are ≤ 0 here.
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693145751953125f, kLn2Lo = 1.428606765330187045e-06f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f, kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f,
                kP5 = 5.0000001201e-1f;

float scalar_exp(float x) {
  x = std::max(x, -87.0f);
  const float n = std::nearbyint(x * kLog2e);
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = kP0;
  p = p * r + kP1;
  p = p * r + kP2;
  p = p * r + kP3;
  p = p * r + kP4;
  p = p * r + kP5;
  p = p * r * r + r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &p, sizeof(bits));
  bits += static_cast<int32_t>(static_cast<uint32_t>(static_cast<int32_t>(n)) << 23);  // 2^n; unsigned: n < 0 is no UB
  std::memcpy(&p, &bits, sizeof(bits));
  return p;
}

double scalar_logsumexp(const float* x, int64_t V, float scale) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t v = 0; v < V; ++v) max = std::max(max, x[v] * scale);
  if (!std::isfinite(max)) return max;
  double sum = 0;  // one running sum over up to 10^5 terms: double keeps it as accurate as the vector paths' lanes
  for (int64_t v = 0; v < V; ++v) sum += scalar_exp(x[v] * scale - max);
  return static_cast<double>(max) + std::log(sum);
}

void scalar_scaled_softmax(const float* x, int64_t V, float scale, float lse, float coef, float* out) {
  for (int64_t v = 0; v < V; ++v) out[v] = coef * scalar_exp(x[v] * scale - lse);
}

void scalar_topk(const float* x, int64_t V, int64_t k, int64_t* ids, float* values) {
  if (k <= 0) return;
  TopKList<float> top{k, ids, values};
  for (int64_t v = 0; v < V; ++v) top.offer(x[v], v);
}

// Vector top-k: after the first k elements, one compare per chunk of `Lanes` against the current k-th value; only
// lanes above it (rare once the list holds large values) go through the scalar insertion.
template <int Lanes, typename AboveMask>
inline __attribute__((always_inline)) void filtered_topk(const float* x, int64_t V, int64_t k, int64_t* ids, float* values, AboveMask above_mask) {
  if (k <= 0) return;
  TopKList<float> top{k, ids, values};
  int64_t v = 0;
  for (; v < V && !top.full(); ++v) top.offer(x[v], v);
  for (; v + Lanes <= V; v += Lanes) {
    for (uint32_t above = above_mask(x + v, top.threshold()); above != 0; above &= above - 1) {
      const int lane = __builtin_ctz(above);
      top.offer(x[v + lane], v + lane);
    }
  }
  for (; v < V; ++v) top.offer(x[v], v);
}

// log Σ exp(scale·x) in blocks that stay in L1: per block a max pass and a Σexp pass against the running max.
template <typename BlockMax, typename BlockSumExp>
inline __attribute__((always_inline)) double blocked_logsumexp(const float* x, int64_t V, float scale, BlockMax block_max, BlockSumExp block_sumexp) {
  constexpr int64_t kBlock = 4096;  // 16 KiB
  float max = -std::numeric_limits<float>::infinity(), sum = 0;
  for (int64_t start = 0; start < V; start += kBlock) {
    const int64_t n = std::min(kBlock, V - start);
    const float block = block_max(x + start, n) * scale;  // scale > 0 keeps the argmax
    if (!std::isfinite(block)) {
      if (std::isnan(block) || block > 0) return block;  // NaN or +inf: the row's lse is that
      continue;                                          // a block of −inf adds nothing
    }
    if (block > max) {
      sum *= std::exp(max - block);
      max = block;
    }
    sum += block_sumexp(x + start, n, scale, max);
  }
  return static_cast<double>(max) + std::log(static_cast<double>(sum));
}

#if defined(__x86_64__)

// Rows stream from DRAM once; the hardware prefetcher alone leaves each core waiting on them (measured on the CI VM:
// half the cycles of the skinny product at the first FMA after each weight load), so rows_dot asks for weight lines
// this far ahead. (The log-sum-exp passes gain nothing from it: they are bound by the exponentials.)
constexpr int64_t kPrefetchBytes = 4096;

inline void prefetch_ahead(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0); }

// ---- AVX2 + FMA: 8 lanes, 4 accumulators ----

__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
  p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
  return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
}

__attribute__((target("avx2,fma"))) inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One DRAM pass per row: each L1-sized block is read twice (max, then Σexp), and the running (max, sum) pair is
// rescaled when a block raises the max.
__attribute__((target("avx2,fma"))) float avx2_block_max(const float* x, int64_t n) {
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
  int64_t v = 0;
  for (; v + 32 <= n; v += 32) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + v));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + v + 8));
    m2 = _mm256_max_ps(m2, _mm256_loadu_ps(x + v + 16));
    m3 = _mm256_max_ps(m3, _mm256_loadu_ps(x + v + 24));
  }
  float max = hmax8(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
  for (; v < n; ++v) max = std::max(max, x[v]);
  return max;
}

__attribute__((target("avx2,fma"))) float avx2_block_sumexp(const float* x, int64_t n, float scale, float shift_value) {
  const __m256 s = _mm256_set1_ps(scale), shift = _mm256_set1_ps(shift_value);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t v = 0;
  for (; v + 32 <= n; v += 32) {
    a0 = _mm256_add_ps(a0, exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + v), s, shift)));
    a1 = _mm256_add_ps(a1, exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + v + 8), s, shift)));
    a2 = _mm256_add_ps(a2, exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + v + 16), s, shift)));
    a3 = _mm256_add_ps(a3, exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + v + 24), s, shift)));
  }
  float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; v < n; ++v) sum += scalar_exp(x[v] * scale - shift_value);
  return sum;
}

__attribute__((target("avx2,fma"))) double avx2_logsumexp(const float* x, int64_t V, float scale) {
  return blocked_logsumexp(x, V, scale, avx2_block_max, avx2_block_sumexp);
}

__attribute__((target("avx2,fma"))) uint32_t avx2_above(const float* x, float threshold) {
  return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x), _mm256_set1_ps(threshold), _CMP_GT_OQ)));
}

__attribute__((target("avx2,fma"))) void avx2_topk(const float* x, int64_t V, int64_t k, int64_t* ids, float* values) {
  filtered_topk<8>(x, V, k, ids, values, avx2_above);
}

// Skinny matrix products (decoding: a handful of rows against a large weight): one pass over the weight rows, each
// dotted with all M ≤ 8 input rows while it is in registers; the input rows stay in L1.
// Calls fn(std::integral_constant<int, M>) with M = rows (1 ≤ rows ≤ 8): the row count as a compile-time constant.
template <typename Fn>
inline void with_row_count(int64_t rows, Fn fn) {
  switch (rows) {
    case 1: return fn(std::integral_constant<int, 1>());
    case 2: return fn(std::integral_constant<int, 2>());
    case 3: return fn(std::integral_constant<int, 3>());
    case 4: return fn(std::integral_constant<int, 4>());
    case 5: return fn(std::integral_constant<int, 5>());
    case 6: return fn(std::integral_constant<int, 6>());
    case 7: return fn(std::integral_constant<int, 7>());
    default: return fn(std::integral_constant<int, 8>());
  }
}

// M is a template argument so that the M accumulators live in registers.
template <int M>
__attribute__((target("avx2,fma"))) void avx2_rows_dot_m(const float* x, int64_t K, const float* w, int64_t n_begin, int64_t n_end, int64_t N,
                                                         float* y) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    const float* row = w + n * K;
    __m256 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
      if (k % 16 == 0) prefetch_ahead(row + k);
      const __m256 wv = _mm256_loadu_ps(row + k);
      for (int m = 0; m < M; ++m) acc[m] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + m * K + k), acc[m]);
    }
    for (int m = 0; m < M; ++m) {
      float sum = hsum8(acc[m]);
      for (int64_t t = k; t < K; ++t) sum += row[t] * x[m * K + t];
      y[m * N + n] = sum;
    }
  }
}

__attribute__((target("avx2,fma"))) void avx2_rows_dot(const float* x, int64_t M, int64_t K, const float* w, int64_t n_begin, int64_t n_end,
                                                       int64_t N, float* y) {
  with_row_count(M, [&](auto rows) { avx2_rows_dot_m<decltype(rows)::value>(x, K, w, n_begin, n_end, N, y); });
}

// A mask of lanes < n, for masked loads and stores.
__attribute__((target("avx2,fma"))) inline __m256i avx2_first(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Every element goes through the vector exp (masked loads and stores at the ragged ends), so that a row gives the same
// bits whether it is written in place or into a separate, streamed buffer.
__attribute__((target("avx2,fma"))) void avx2_scaled_softmax(const float* x, int64_t V, float scale, float lse, float coef, float* out) {
  const __m256 s = _mm256_set1_ps(scale), shift = _mm256_set1_ps(lse), c = _mm256_set1_ps(coef);
  int64_t v = 0;
  if (out != x) {
    // A separate output row is not in cache: non-temporal stores skip reading its lines before writing them.
    const int64_t head = std::min<int64_t>(V, (32 - reinterpret_cast<uintptr_t>(out) % 32) % 32 / sizeof(float));
    if (head > 0) {
      const __m256i m = avx2_first(head);
      _mm256_maskstore_ps(out, m, _mm256_mul_ps(c, exp8(_mm256_fmsub_ps(_mm256_maskload_ps(x, m), s, shift))));
    }
    for (v = head; v + 8 <= V; v += 8) _mm256_stream_ps(out + v, _mm256_mul_ps(c, exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + v), s, shift))));
    _mm_sfence();
  } else {
    for (; v + 8 <= V; v += 8) _mm256_storeu_ps(out + v, _mm256_mul_ps(c, exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + v), s, shift))));
  }
  if (v < V) {
    const __m256i m = avx2_first(V - v);
    _mm256_maskstore_ps(out + v, m, _mm256_mul_ps(c, exp8(_mm256_fmsub_ps(_mm256_maskload_ps(x + v, m), s, shift))));
  }
}

// ---- AVX-512: 16 lanes, 4 accumulators ----

__attribute__((target("avx512f"))) inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_cvtps_epi32(n), 23);
  return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), e));
}

__attribute__((target("avx512f"))) float avx512_block_max(const float* x, int64_t n) {
  __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
  int64_t v = 0;
  for (; v + 64 <= n; v += 64) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + v));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + v + 16));
    m2 = _mm512_max_ps(m2, _mm512_loadu_ps(x + v + 32));
    m3 = _mm512_max_ps(m3, _mm512_loadu_ps(x + v + 48));
  }
  float max = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
  for (; v < n; ++v) max = std::max(max, x[v]);
  return max;
}

__attribute__((target("avx512f"))) float avx512_block_sumexp(const float* x, int64_t n, float scale, float shift_value) {
  const __m512 s = _mm512_set1_ps(scale), shift = _mm512_set1_ps(shift_value);
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t v = 0;
  for (; v + 64 <= n; v += 64) {
    a0 = _mm512_add_ps(a0, exp16(_mm512_fmsub_ps(_mm512_loadu_ps(x + v), s, shift)));
    a1 = _mm512_add_ps(a1, exp16(_mm512_fmsub_ps(_mm512_loadu_ps(x + v + 16), s, shift)));
    a2 = _mm512_add_ps(a2, exp16(_mm512_fmsub_ps(_mm512_loadu_ps(x + v + 32), s, shift)));
    a3 = _mm512_add_ps(a3, exp16(_mm512_fmsub_ps(_mm512_loadu_ps(x + v + 48), s, shift)));
  }
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  for (; v < n; ++v) sum += scalar_exp(x[v] * scale - shift_value);
  return sum;
}

__attribute__((target("avx512f"))) double avx512_logsumexp(const float* x, int64_t V, float scale) {
  return blocked_logsumexp(x, V, scale, avx512_block_max, avx512_block_sumexp);
}

__attribute__((target("avx512f"))) void avx512_scaled_softmax(const float* x, int64_t V, float scale, float lse, float coef, float* out) {
  const __m512 s = _mm512_set1_ps(scale), shift = _mm512_set1_ps(lse), c = _mm512_set1_ps(coef);
  int64_t v = 0;
  if (out != x) {
    // As in avx2_scaled_softmax: stream a separate output row past the cache.
    const int64_t head = std::min<int64_t>(V, (64 - reinterpret_cast<uintptr_t>(out) % 64) % 64 / sizeof(float));
    if (head > 0) {
      const __mmask16 m = static_cast<__mmask16>((1u << head) - 1);  // lanes < head
      _mm512_mask_storeu_ps(out, m, _mm512_mul_ps(c, exp16(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, x), s, shift))));
    }
    for (v = head; v + 16 <= V; v += 16) _mm512_stream_ps(out + v, _mm512_mul_ps(c, exp16(_mm512_fmsub_ps(_mm512_loadu_ps(x + v), s, shift))));
    _mm_sfence();
  } else {
    for (; v + 16 <= V; v += 16) _mm512_storeu_ps(out + v, _mm512_mul_ps(c, exp16(_mm512_fmsub_ps(_mm512_loadu_ps(x + v), s, shift))));
  }
  if (v < V) {
    const __mmask16 m = static_cast<__mmask16>((1u << (V - v)) - 1);
    _mm512_mask_storeu_ps(out + v, m, _mm512_mul_ps(c, exp16(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, x + v), s, shift))));
  }
}

__attribute__((target("avx512f"))) uint32_t avx512_above(const float* x, float threshold) {
  return _mm512_cmp_ps_mask(_mm512_loadu_ps(x), _mm512_set1_ps(threshold), _CMP_GT_OQ);
}

__attribute__((target("avx512f"))) void avx512_topk(const float* x, int64_t V, int64_t k, int64_t* ids, float* values) {
  filtered_topk<16>(x, V, k, ids, values, avx512_above);
}

template <int M>
__attribute__((target("avx512f"))) void avx512_rows_dot_m(const float* x, int64_t K, const float* w, int64_t n_begin, int64_t n_end, int64_t N,
                                                          float* y) {
  const __mmask16 tail = static_cast<__mmask16>((1u << (K % 16)) - 1);
  for (int64_t n = n_begin; n < n_end; ++n) {
    const float* row = w + n * K;
    __m512 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      prefetch_ahead(row + k);
      const __m512 wv = _mm512_loadu_ps(row + k);
      for (int m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + m * K + k), acc[m]);
    }
    if (tail) {
      const __m512 wv = _mm512_maskz_loadu_ps(tail, row + k);
      for (int m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x + m * K + k), acc[m]);
    }
    for (int m = 0; m < M; ++m) y[m * N + n] = _mm512_reduce_add_ps(acc[m]);
  }
}

__attribute__((target("avx512f"))) void avx512_rows_dot(const float* x, int64_t M, int64_t K, const float* w, int64_t n_begin, int64_t n_end,
                                                        int64_t N, float* y) {
  with_row_count(M, [&](auto rows) { avx512_rows_dot_m<decltype(rows)::value>(x, K, w, n_begin, n_end, N, y); });
}

#endif  // __x86_64__

Kernels select() {
#if defined(__x86_64__)
  // PREFIX_RL_SIMD=avx2|scalar caps the choice, so that the narrower paths can be checked on a wider CPU.
  const char* cap = std::getenv("PREFIX_RL_SIMD");
  const bool allow512 = !cap || std::strcmp(cap, "avx512") == 0, allow2 = allow512 || std::strcmp(cap, "avx2") == 0;
  __builtin_cpu_init();
  if (allow512 && __builtin_cpu_supports("avx512f")) return {"avx512", avx512_logsumexp, avx512_scaled_softmax, avx512_topk, avx512_rows_dot};
  if (allow2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {"avx2", avx2_logsumexp, avx2_scaled_softmax, avx2_topk, avx2_rows_dot};
#endif
  return {"scalar", scalar_logsumexp, scalar_scaled_softmax, scalar_topk, nullptr};
}

}  // namespace

const Kernels& kernels() {
  static const Kernels chosen = select();
  return chosen;
}

}  // namespace prefix_rl::kernels::simd
