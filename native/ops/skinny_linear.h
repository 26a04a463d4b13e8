// x · Wᵀ + b for inference with few rows, as in decoding (8 sequences × 1 new token).
//
// Why: for a handful of rows libtorch's sgemm is far from the memory bound on these CPUs — measured on the CI VM,
// a [8, 512] × [32000, 512]ᵀ product took 18–31 ms where reading the 65 MB weight once takes ~4 ms — and the
// projections and the LM head of one decoding step are exactly such products.
#pragma once

#include <ATen/ATen.h>

namespace prefix_rl {

// Inputs with at most this many rows take the skinny path.
constexpr int64_t kSkinnyRows = 16;

// The product for float32 CPU tensors with at most kSkinnyRows rows (x: [..., K], weight: [N, K], bias: [N] or
// undefined) when no gradient is recorded; otherwise an undefined tensor, and the caller uses at::linear.
at::Tensor skinny_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// x · Wᵀ + b: the skinny kernel where it applies, else at::linear. What the decoder's projections and LM head call.
at::Tensor dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

}  // namespace prefix_rl
