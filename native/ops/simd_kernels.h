// Vectorised float32 row kernels with runtime ISA dispatch (AVX-512, AVX2+FMA, or portable scalar code).
#pragma once

#include <cstdint>

namespace prefix_rl::kernels::simd {

struct Kernels {
  const char* isa;
  // log Σ_v exp(scale · x_v)
  float (*logsumexp)(const float* x, int64_t V, float scale);
  // out_v = coef · exp(scale · x_v − lse)
  void (*scaled_softmax)(const float* x, int64_t V, float scale, float lse, float coef, float* out);
};

// The best kernels this CPU runs (chosen once).
const Kernels& kernels();

}  // namespace prefix_rl::kernels::simd
