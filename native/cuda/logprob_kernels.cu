#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <type_traits>

#include "cuda/kernels.h"

namespace prefix_rl::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kTopKThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

// Running (max, Σ exp(z − max)) of an online softmax.
struct MaxSum {
  float max;
  float sum;
};

__device__ __forceinline__ MaxSum add(MaxSum a, float z) {
  if (z > a.max) return {z, a.sum * __expf(a.max - z) + 1.0f};
  return {a.max, a.sum + __expf(z - a.max)};
}

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  if (a.max == -INFINITY) return b;
  if (b.max == -INFINITY) return a;
  const float m = fmaxf(a.max, b.max);
  return {m, a.sum * __expf(a.max - m) + b.sum * __expf(b.max - m)};
}

// Block-wide merge of every thread's MaxSum; all threads get the row's logsumexp.
__device__ float block_logsumexp(MaxSum local) {
  __shared__ MaxSum warp_results[kWarps];
  __shared__ float result;
  for (int offset = 16; offset > 0; offset >>= 1) {
    MaxSum other{__shfl_down_sync(0xffffffff, local.max, offset), __shfl_down_sync(0xffffffff, local.sum, offset)};
    local = merge(local, other);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_results[warp] = local;
  __syncthreads();
  if (threadIdx.x == 0) {
    MaxSum total = warp_results[0];
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) total = merge(total, warp_results[w]);
    result = total.max + logf(total.sum);
  }
  __syncthreads();
  return result;
}

// Visits x[v]·scale for the row in 16-byte vector loads when the row is aligned, else element by element.
template <typename T, typename Fn>
__device__ __forceinline__ void for_each_scaled(const T* x, int64_t V, float scale, Fn fn) {
  constexpr int kPerVec = 16 / sizeof(T);
  if (reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    const int64_t vecs = V / kPerVec;
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    for (int64_t i = threadIdx.x; i < vecs; i += blockDim.x) {
      uint4 packed = xv[i];
      const T* items = reinterpret_cast<const T*>(&packed);
#pragma unroll
      for (int j = 0; j < kPerVec; ++j) fn(i * kPerVec + j, to_float(items[j]) * scale);
    }
    for (int64_t v = vecs * kPerVec + threadIdx.x; v < V; v += blockDim.x) fn(v, to_float(x[v]) * scale);
  } else {
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) fn(v, to_float(x[v]) * scale);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    gather_forward_kernel(const T* logits, int64_t V, float scale, const int64_t* index, int64_t K, float* logp, float* lse_out) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * V;
  MaxSum local{-INFINITY, 0.0f};
  for_each_scaled(x, V, scale, [&](int64_t, float z) { local = add(local, z); });
  const float lse = block_logsumexp(local);
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) logp[row * K + k] = to_float(x[index[row * K + k]]) * scale - lse;
  if (threadIdx.x == 0) lse_out[row] = lse;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) gather_backward_kernel(const T* logits, int64_t V, float scale, const float* lse_in, const int64_t* index,
                                                                   const float* grad_logp, int64_t K, T* grad) {
  __shared__ int64_t ids[kMaxGatherK];
  __shared__ float g[kMaxGatherK];
  const int64_t row = blockIdx.x;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    ids[k] = index[row * K + k];
    g[k] = grad_logp[row * K + k];
  }
  __syncthreads();
  float g_sum = 0.0f;
  bool all_zero = true;
  for (int64_t k = 0; k < K; ++k) g_sum += g[k], all_zero = all_zero && g[k] == 0.0f;
  T* out = grad + row * V;
  if (all_zero) {  // masked rows: exact zeros, and the logits are not read
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) out[v] = from_float<T>(0.0f);
    return;
  }
  const float coef = -g_sum * scale, lse = lse_in[row];
  for_each_scaled(logits + row * V, V, scale, [&](int64_t v, float z) {
    float value = coef * __expf(z - lse);
    for (int64_t k = 0; k < K; ++k) value += ids[k] == v ? scale * g[k] : 0.0f;
    out[v] = from_float<T>(value);
  });
}

// Inserts (value, id) into a descending top-k list of length `filled` ≤ k; ties keep the lower id first.
__device__ __forceinline__ void insert_topk(float* values, int* ids, int& filled, int k, float value, int id) {
  if (filled == k && !(value > values[k - 1])) return;
  int slot = filled < k ? filled++ : k - 1;
  while (slot > 0 && (value > values[slot - 1] || (value == values[slot - 1] && id < ids[slot - 1]))) {
    values[slot] = values[slot - 1];
    ids[slot] = ids[slot - 1];
    --slot;
  }
  values[slot] = value;
  ids[slot] = id;
}

template <typename T>
__global__ void __launch_bounds__(kTopKThreads) row_topk_kernel(const T* logits, int64_t V, float scale, int k, const int64_t* tokens,
                                                                int64_t* ids_out, float* values_out, float* token_value, float* lse_out) {
  __shared__ float cand_values[kTopKThreads * kMaxTopK];
  __shared__ int cand_ids[kTopKThreads * kMaxTopK];
  __shared__ int cand_count[kTopKThreads];
  const int64_t row = blockIdx.x;
  const T* x = logits + row * V;
  float values[kMaxTopK];
  int ids[kMaxTopK];
  int filled = 0;
  MaxSum local{-INFINITY, 0.0f};
  for_each_scaled(x, V, scale, [&](int64_t v, float z) {
    local = add(local, z);
    insert_topk(values, ids, filled, k, z, static_cast<int>(v));
  });
  for (int j = 0; j < filled; ++j) {
    cand_values[threadIdx.x * kMaxTopK + j] = values[j];
    cand_ids[threadIdx.x * kMaxTopK + j] = ids[j];
  }
  cand_count[threadIdx.x] = filled;
  const float lse = block_logsumexp(local);  // synchronises the block
  if (threadIdx.x == 0) {
    filled = 0;
    for (int t = 0; t < static_cast<int>(blockDim.x); ++t) {
      for (int j = 0; j < cand_count[t]; ++j) insert_topk(values, ids, filled, k, cand_values[t * kMaxTopK + j], cand_ids[t * kMaxTopK + j]);
    }
    for (int j = 0; j < k; ++j) {
      ids_out[row * k + j] = ids[j];
      values_out[row * k + j] = values[j];
    }
    token_value[row] = to_float(x[tokens[row]]) * scale;
    lse_out[row] = lse;
  }
}

template <typename Launch>
const char* launch_typed(LogitsType type, Launch launch) {
  switch (type) {
    case LogitsType::Float32: launch(static_cast<const float*>(nullptr)); break;
    case LogitsType::BFloat16: launch(static_cast<const __nv_bfloat16*>(nullptr)); break;
    case LogitsType::Float16: launch(static_cast<const __half*>(nullptr)); break;
  }
  cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

}  // namespace

const char* gather_logprobs_forward(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, const int64_t* index, int64_t K,
                                    float* logp, float* lse, void* stream) {
  if (N == 0) return nullptr;
  return launch_typed(type, [&](auto tag) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    gather_forward_kernel<T><<<N, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(logits), V, scale, index, K, logp, lse);
  });
}

const char* gather_logprobs_backward(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, const float* lse, const int64_t* index,
                                     const float* grad_logp, int64_t K, void* grad_logits, void* stream) {
  if (N == 0) return nullptr;
  if (K > kMaxGatherK) return "gather_logprobs_backward: K exceeds kMaxGatherK";
  return launch_typed(type, [&](auto tag) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    gather_backward_kernel<T><<<N, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(logits), V, scale, lse, index, grad_logp,
                                                                                     K, static_cast<T*>(grad_logits));
  });
}

const char* row_topk(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, int64_t k, const int64_t* tokens, int64_t* ids,
                     float* values, float* token_value, float* lse, void* stream) {
  if (N == 0) return nullptr;
  if (k < 1 || k > kMaxTopK) return "row_topk: k must be in [1, kMaxTopK]";
  return launch_typed(type, [&](auto tag) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    row_topk_kernel<T><<<N, kTopKThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(logits), V, scale, static_cast<int>(k),
                                                                                  tokens, ids, values, token_value, lse);
  });
}

}  // namespace prefix_rl::cuda
