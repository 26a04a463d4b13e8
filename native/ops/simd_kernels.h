// Vectorised float32 row kernels with runtime ISA dispatch (AVX-512, AVX2+FMA, or portable scalar code).
#pragma once

#include <cstdint>

namespace prefix_rl::kernels::simd {

struct Kernels {
  const char* isa;
  // log Σ_v exp(scale · x_v), returned in double (max + log of the float sum) so callers can subtract it without a
  // float rounding of a value ~log V
  double (*logsumexp)(const float* x, int64_t V, float scale);
  // out_v = coef · exp(scale · x_v − lse)
  void (*scaled_softmax)(const float* x, int64_t V, float scale, float lse, float coef, float* out);
  // The k largest x_v, largest first (ties: the lower v first; NaN never enters once k slots are filled), as
  // kernels::row_topk; the vector versions skip whole chunks with nothing above the current k-th value.
  void (*topk)(const float* x, int64_t V, int64_t k, int64_t* ids, float* values);
  // y[m, n] = Σ_k x[m, k] · w[n, k] for m < M ≤ 8 and n in [n_begin, n_end) (rows of y are N long): each weight row
  // is read once and dotted with every x row. Null on the scalar ISA.
  void (*rows_dot)(const float* x, int64_t M, int64_t K, const float* w, int64_t n_begin, int64_t n_end, int64_t N, float* y);
};

// The best kernels this CPU runs (chosen once).
const Kernels& kernels();

}  // namespace prefix_rl::kernels::simd
