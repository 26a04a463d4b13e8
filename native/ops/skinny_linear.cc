#include "ops/skinny_linear.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "ops/simd_kernels.h"

namespace prefix_rl {

at::Tensor skinny_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const auto rows_dot = kernels::simd::kernels().rows_dot;
  if (!rows_dot || x.dim() < 1 || weight.dim() != 2 || !x.device().is_cpu() || !weight.device().is_cpu() || x.scalar_type() != at::kFloat ||
      weight.scalar_type() != at::kFloat || (bias.defined() && bias.scalar_type() != at::kFloat)) {
    return {};
  }
  const bool recording = at::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
  const int64_t K = weight.size(1), N = weight.size(0);
  if (recording || x.size(-1) != K || K == 0) return {};
  const int64_t M = x.numel() / K;
  if (M == 0 || M > kSkinnyRows) return {};

  at::Tensor x2d = x.reshape({M, K}).contiguous();
  at::Tensor w = weight.contiguous();
  at::Tensor y = at::empty({M, N}, x.options());
  const float* xp = x2d.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  // Split the weight rows across threads; rows_dot takes up to 8 input rows per pass.
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
    for (int64_t m = 0; m < M; m += 8) rows_dot(xp + m * K, std::min<int64_t>(8, M - m), K, wp, begin, end, N, yp + m * N);
  });
  if (bias.defined()) y.add_(bias);
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  return y.view(sizes);
}

at::Tensor dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  at::Tensor y = skinny_linear(x, weight, bias);
  return y.defined() ? y : at::linear(x, weight, bias);
}

}  // namespace prefix_rl
