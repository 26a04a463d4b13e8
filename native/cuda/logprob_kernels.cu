#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cfloat>
#include <climits>
#include <type_traits>

#include "cuda/kernels.h"

namespace prefix_rl::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kTopKThreads = 256;
constexpr int kWarps = kThreads / 32;
// Each thread's top-k list in shared memory, one slot of padding: threads' lists start in different banks.
constexpr int kListStride = kMaxTopK + 1;
// Rows are the grid's x dimension (at most 2^31 − 1 blocks).
constexpr int64_t kMaxRows = INT_MAX;

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
  // exp(−inf) adds nothing; without this a row whose first values are −inf (masked tokens) computes −inf − (−inf).
  if (z == -INFINITY) return a;
  return {a.max, a.sum + __expf(z - a.max)};
}

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  if (a.max == -INFINITY) return b;
  if (b.max == -INFINITY) return a;
  const float m = fmaxf(a.max, b.max);
  return {m, a.sum * __expf(a.max - m) + b.sum * __expf(b.max - m)};
}

// Block-wide merge of every thread's MaxSum; every thread gets the row's total. Synchronises the block.
__device__ MaxSum block_maxsum(MaxSum local) {
  __shared__ MaxSum warp_results[kWarps];
  __shared__ MaxSum result;
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
    result = total;
  }
  __syncthreads();
  return result;
}

__device__ __forceinline__ float logsumexp(MaxSum total) { return total.max + logf(total.sum); }

// Elements before the first 16-byte boundary of `p` (rows of odd lengths such as V = 50257 start anywhere).
template <typename T>
__device__ __forceinline__ int64_t head_elements(const void* p, int64_t V) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  if (address % sizeof(T) != 0) return V;  // not even element-aligned: all scalar
  const int64_t head = static_cast<int64_t>((16 - address % 16) % 16 / sizeof(T));
  return head < V ? head : V;
}

// Visits (v, x[v]) for the row: a scalar head up to the first 16-byte boundary, 16-byte vector loads, a scalar tail.
template <typename T, typename Fn>
__device__ __forceinline__ void for_each(const T* x, int64_t V, Fn fn) {
  constexpr int kPerVec = 16 / sizeof(T);
  const int64_t head = head_elements<T>(x, V);
  for (int64_t v = threadIdx.x; v < head; v += blockDim.x) fn(v, to_float(x[v]));
  const int64_t vecs = (V - head) / kPerVec;
  const uint4* xv = reinterpret_cast<const uint4*>(x + head);
  for (int64_t i = threadIdx.x; i < vecs; i += blockDim.x) {
    uint4 packed = xv[i];
    const T* items = reinterpret_cast<const T*>(&packed);
#pragma unroll
    for (int j = 0; j < kPerVec; ++j) fn(head + i * kPerVec + j, to_float(items[j]));
  }
  for (int64_t v = head + vecs * kPerVec + threadIdx.x; v < V; v += blockDim.x) fn(v, to_float(x[v]));
}

// out[v] = fn(x[v]) for the row, with 16-byte loads and stores where x and out share their alignment (always for
// in-place, and for rows of same-shaped contiguous tensors).
template <typename T, typename Fn>
__device__ __forceinline__ void transform(const T* x, T* out, int64_t V, Fn fn) {
  constexpr int kPerVec = 16 / sizeof(T);
  const int64_t head = head_elements<T>(x, V);
  if (head != head_elements<T>(out, V)) {
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) out[v] = from_float<T>(fn(to_float(x[v])));
    return;
  }
  for (int64_t v = threadIdx.x; v < head; v += blockDim.x) out[v] = from_float<T>(fn(to_float(x[v])));
  const int64_t vecs = (V - head) / kPerVec;
  const uint4* xv = reinterpret_cast<const uint4*>(x + head);
  uint4* ov = reinterpret_cast<uint4*>(out + head);
  for (int64_t i = threadIdx.x; i < vecs; i += blockDim.x) {
    uint4 packed = xv[i];
    T* items = reinterpret_cast<T*>(&packed);
#pragma unroll
    for (int j = 0; j < kPerVec; ++j) items[j] = from_float<T>(fn(to_float(items[j])));
    ov[i] = packed;
  }
  for (int64_t v = head + vecs * kPerVec + threadIdx.x; v < V; v += blockDim.x) out[v] = from_float<T>(fn(to_float(x[v])));
}

// out[0, V) = 0 with 16-byte stores where aligned; nothing is read (masked rows of a fresh gradient buffer).
template <typename T>
__device__ __forceinline__ void zero_row(T* out, int64_t V) {
  constexpr int kPerVec = 16 / sizeof(T);
  const int64_t head = head_elements<T>(out, V);
  for (int64_t v = threadIdx.x; v < head; v += blockDim.x) out[v] = from_float<T>(0.0f);
  const int64_t vecs = (V - head) / kPerVec;
  uint4* ov = reinterpret_cast<uint4*>(out + head);
  for (int64_t i = threadIdx.x; i < vecs; i += blockDim.x) ov[i] = make_uint4(0, 0, 0, 0);  // +0.0 in every type
  for (int64_t v = head + vecs * kPerVec + threadIdx.x; v < V; v += blockDim.x) out[v] = from_float<T>(0.0f);
}

template <typename T, typename Out>
__global__ void __launch_bounds__(kThreads)
    gather_forward_kernel(const T* logits, int64_t V, float scale, const int64_t* index, int64_t K, Out* logp, float* lse_out) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * V;
  MaxSum local{-INFINITY, 0.0f};
  for_each(x, V, [&](int64_t, float value) { local = add(local, value * scale); });
  const MaxSum total = block_maxsum(local);
  if constexpr (std::is_same_v<Out, double>) {
    const double lse = static_cast<double>(total.max) + log(static_cast<double>(total.sum));
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) logp[row * K + k] = static_cast<double>(to_float(x[index[row * K + k]]) * scale) - lse;
  } else {
    const float lse = logsumexp(total);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) logp[row * K + k] = to_float(x[index[row * K + k]]) * scale - lse;
  }
  if (threadIdx.x == 0) lse_out[row] = logsumexp(total);
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
  if (all_zero) {  // masked rows: exact zeros, and the logits are not read (the same for every thread of the block)
    zero_row(out, V);
    return;
  }
  const float coef = -g_sum * scale, lse = lse_in[row];
  // The dense term for every element, then the K gathered terms added one by one (duplicates accumulate): the CPU
  // kernel's order, and no per-element comparison against the K ids.
  transform(logits + row * V, out, V, [&](float value) { return coef * __expf(value * scale - lse); });
  __syncthreads();  // makes the block's global writes visible to thread 0
  if (threadIdx.x == 0) {
    for (int64_t k = 0; k < K; ++k) out[ids[k]] = from_float<T>(to_float(out[ids[k]]) + scale * g[k]);
  }
}

// Block-wide sum of every thread's value; every thread gets the total. Synchronises the block.
__device__ float block_sum(float local) {
  __shared__ float warp_sums[kWarps];
  __shared__ float result;
  for (int offset = 16; offset > 0; offset >>= 1) local += __shfl_down_sync(0xffffffff, local, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = local;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += warp_sums[w];
    result = total;
  }
  __syncthreads();
  return result;
}

// p·d with d = lse − z ≥ 0 and p = e^−d; zero once p underflows (also for d = +inf, where p·d would be NaN).
__device__ __forceinline__ float entropy_term(float d, float times) { return d < 87.0f ? __expf(-d) * times : 0.0f; }

template <typename T>
__global__ void __launch_bounds__(kThreads) entropy_forward_kernel(const T* logits, int64_t V, float scale, float* lse_out, float* entropy_out) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * V;
  MaxSum local{-INFINITY, 0.0f};
  for_each(x, V, [&](int64_t, float value) { local = add(local, value * scale); });
  const float lse = logsumexp(block_maxsum(local));
  float h = 0.0f;
  for_each(x, V, [&](int64_t, float value) {
    const float d = lse - value * scale;
    h += entropy_term(d, d);
  });
  h = block_sum(h);
  if (threadIdx.x == 0) {
    lse_out[row] = lse;
    entropy_out[row] = h;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) entropy_backward_kernel(const T* logits, int64_t V, float scale, const float* lse_in,
                                                                    const float* entropy_in, const float* grad_entropy, T* grad) {
  const int64_t row = blockIdx.x;
  T* out = grad + row * V;
  const float g = grad_entropy[row];
  if (g == 0.0f) {  // no gradient: exact zeros, the logits not read
    zero_row(out, V);
    return;
  }
  const float coef = g * scale, lse = lse_in[row], h = entropy_in[row];
  transform(logits + row * V, out, V, [&](float value) {
    const float d = lse - value * scale;
    return coef * entropy_term(d, d - h);
  });
}

// The CPU's order of candidates: a larger value first; equal values, the lower id first.
__device__ __forceinline__ bool ranks_before(float a, int a_id, float b, int b_id) { return a > b || (a == b && a_id < b_id); }

// Inserts (value, id) into a top-k list of length `filled` ≤ k in ranks_before order.
__device__ __forceinline__ void insert_topk(float* values, int* ids, int& filled, int k, float value, int id) {
  if (filled == k && !ranks_before(value, id, values[k - 1], ids[k - 1])) return;
  int slot = filled < k ? filled++ : k - 1;
  while (slot > 0 && ranks_before(value, id, values[slot - 1], ids[slot - 1])) {
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
  __shared__ float list_values[kTopKThreads * kListStride];
  __shared__ int list_ids[kTopKThreads * kListStride];
  const int64_t row = blockIdx.x;
  const T* x = logits + row * V;
  float values[kMaxTopK];
  int ids[kMaxTopK];
  int filled = 0;
  MaxSum local{-INFINITY, 0.0f};
  // Ranked by the unscaled value, as on the CPU: scaling could round distinct values to equal ones.
  for_each(x, V, [&](int64_t v, float value) {
    local = add(local, value * scale);
    insert_topk(values, ids, filled, k, value, static_cast<int>(v));
  });
  // Each thread's list, padded to k with entries that rank after every real one.
  float* mine = list_values + threadIdx.x * kListStride;
  int* mine_ids = list_ids + threadIdx.x * kListStride;
  for (int j = 0; j < k; ++j) {
    mine[j] = j < filled ? values[j] : -INFINITY;
    mine_ids[j] = j < filled ? ids[j] : INT_MAX;
  }
  const MaxSum total = block_maxsum(local);  // also synchronises the lists
  // A tree of pairwise merges, log2(threads) rounds of O(k) each, instead of one thread merging every list.
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      const float* a = list_values + threadIdx.x * kListStride;
      const int* a_ids = list_ids + threadIdx.x * kListStride;
      const float* b = list_values + (threadIdx.x + stride) * kListStride;
      const int* b_ids = list_ids + (threadIdx.x + stride) * kListStride;
      int i = 0, j = 0;
      for (int slot = 0; slot < k; ++slot) {
        const bool take_a = ranks_before(a[i], a_ids[i], b[j], b_ids[j]);
        values[slot] = take_a ? a[i] : b[j];
        ids[slot] = take_a ? a_ids[i++] : b_ids[j++];
      }
    }
    __syncthreads();  // every read of this round is done before the writes
    if (threadIdx.x < stride) {
      for (int slot = 0; slot < k; ++slot) mine[slot] = values[slot], mine_ids[slot] = ids[slot];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    for (int j = 0; j < k; ++j) {
      ids_out[row * k + j] = list_ids[j];
      values_out[row * k + j] = list_values[j] * scale;
    }
    if (tokens) token_value[row] = to_float(x[tokens[row]]) * scale;
    lse_out[row] = logsumexp(total);
  }
}

// After the block's writes to a chunk row, thread 0 calls fn(k, column) for each of the row's index entries ids[k]
// inside the chunk [begin, begin + C), in k order (as the CPU row kernels add them). Synchronises the block.
template <typename Fn>
__device__ __forceinline__ void for_chunk_ids(const int64_t* ids, int64_t K, int64_t begin, int64_t C, Fn fn) {
  __syncthreads();  // makes the block's global writes visible to thread 0
  if (threadIdx.x != 0) return;
  for (int64_t k = 0; k < K; ++k) {
    if (ids[k] >= begin && ids[k] < begin + C) fn(k, ids[k] - begin);
  }
}

// One block per row of a vocabulary chunk [N, C], in place (see chunk_softmax).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    chunk_softmax_kernel(T* logits, int64_t C, float scale, const float* lse_in, const int64_t* index, int64_t K, int64_t begin) {
  const int64_t row = blockIdx.x;
  T* x = logits + row * C;
  const float lse = lse_in[row];
  if (lse == -INFINITY) {
    zero_row(x, C);
    return;
  }
  transform(x, x, C, [&](float value) { return __expf(value * scale - lse); });
  for_chunk_ids(index + row * K, K, begin, C, [&](int64_t, int64_t column) { x[column] = from_float<T>(0.0f); });
}

// One block per row of a vocabulary chunk [N, C], in place (see head_chunk_backward).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    head_chunk_backward_kernel(T* logits, int64_t C, float scale, const float* lse_in, const float* g_sum_in, const float* g_entropy_in,
                               const float* entropy_in, const int64_t* index, const float* grad_logp, int64_t K, int64_t begin) {
  const int64_t row = blockIdx.x;
  T* x = logits + row * C;
  const int64_t* ids = index + row * K;
  const float* g = grad_logp + row * K;
  const float g_sum = g_sum_in[row], g_h = g_entropy_in ? g_entropy_in[row] : 0.0f;
  // The CPU's test for a row with no gradient: every thread of the block reaches the same answer.
  bool none = g_sum == 0.0f && g_h == 0.0f;
  for (int64_t k = 0; k < K && none; ++k) none = !(ids[k] >= begin && ids[k] < begin + C) || g[k] == 0.0f;
  if (none) {
    zero_row(x, C);
    return;
  }
  const float lse = lse_in[row], h = g_entropy_in ? entropy_in[row] : 0.0f;
  transform(x, x, C, [&](float value) {
    const float d = lse - value * scale;  // −log p_v ≥ 0; p_v counts as 0 below e^−87 (and for d = +inf or NaN)
    return d < 87.0f ? scale * __expf(-d) * (g_h * (d - h) - g_sum) : 0.0f;
  });
  for_chunk_ids(ids, K, begin, C, [&](int64_t k, int64_t column) { x[column] = from_float<T>(to_float(x[column]) + scale * g[k]); });
}

// Launches `launch` with a null pointer of the logits' element type (its tag) for N rows, one block each: nothing
// for N = 0, an error beyond the grid's limit; returns the launch's error.
template <typename Launch>
const char* launch_typed(LogitsType type, int64_t N, Launch launch) {
  if (N == 0) return nullptr;
  if (N > kMaxRows) return "more rows than one kernel launch takes (2^31 - 1)";
  switch (type) {
    case LogitsType::Float32: launch(static_cast<const float*>(nullptr)); break;
    case LogitsType::BFloat16: launch(static_cast<const __nv_bfloat16*>(nullptr)); break;
    case LogitsType::Float16: launch(static_cast<const __half*>(nullptr)); break;
  }
  cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

}  // namespace

bool kernels_available(int device) {
  constexpr int kDevices = 64;
  static std::atomic<int> known[kDevices] = {};  // 0 unknown, 1 yes, 2 no
  if (device < 0 || device >= kDevices) return false;
  int state = known[device].load();
  if (state == 0) {
    int previous = 0;
    cudaFuncAttributes attributes;
    bool ok = cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(device) == cudaSuccess &&
              cudaFuncGetAttributes(&attributes, gather_forward_kernel<float, float>) == cudaSuccess;
    cudaGetLastError();  // an image missing for this device is not an error of the next launch
    cudaSetDevice(previous);
    state = ok ? 1 : 2;
    known[device].store(state);
  }
  return state == 1;
}

const char* gather_logprobs_forward(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, const int64_t* index, int64_t K,
                                    void* logp, LogprobType logp_type, float* lse, void* stream) {
  return launch_typed(type, N, [&](auto tag) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    auto s = static_cast<cudaStream_t>(stream);
    if (logp_type == LogprobType::Float64) {
      gather_forward_kernel<T, double><<<N, kThreads, 0, s>>>(static_cast<const T*>(logits), V, scale, index, K, static_cast<double*>(logp), lse);
    } else {
      gather_forward_kernel<T, float><<<N, kThreads, 0, s>>>(static_cast<const T*>(logits), V, scale, index, K, static_cast<float*>(logp), lse);
    }
  });
}

const char* gather_logprobs_backward(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, const float* lse, const int64_t* index,
                                     const float* grad_logp, int64_t K, void* grad_logits, void* stream) {
  if (K > kMaxGatherK) return "gather_logprobs_backward: K exceeds kMaxGatherK";
  return launch_typed(type, N, [&](auto tag) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    gather_backward_kernel<T><<<N, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(logits), V, scale, lse, index, grad_logp,
                                                                                     K, static_cast<T*>(grad_logits));
  });
}

const char* token_entropy_forward(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, float* lse, float* entropy, void* stream) {
  return launch_typed(type, N, [&](auto tag) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    entropy_forward_kernel<T><<<N, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(logits), V, scale, lse, entropy);
  });
}

const char* token_entropy_backward(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, const float* lse, const float* entropy,
                                   const float* grad_entropy, void* grad_logits, void* stream) {
  return launch_typed(type, N, [&](auto tag) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    entropy_backward_kernel<T><<<N, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(logits), V, scale, lse, entropy,
                                                                                      grad_entropy, static_cast<T*>(grad_logits));
  });
}

const char* row_topk(const void* logits, LogitsType type, int64_t N, int64_t V, float scale, int64_t k, const int64_t* tokens, int64_t* ids,
                     float* values, float* token_value, float* lse, void* stream) {
  if (k < 1 || k > kMaxTopK) return "row_topk: k must be in [1, kMaxTopK]";
  if (V > INT_MAX) return "row_topk: the vocabulary exceeds 2^31 - 1";
  if (k > V) return "row_topk: k exceeds the vocabulary";
  return launch_typed(type, N, [&](auto tag) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    row_topk_kernel<T><<<N, kTopKThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(logits), V, scale, static_cast<int>(k),
                                                                                  tokens, ids, values, token_value, lse);
  });
}

const char* row_lse_entropy(const void* logits, LogitsType type, int64_t N, int64_t C, float scale, float* lse, float* entropy, void* stream) {
  if (entropy) return token_entropy_forward(logits, type, N, C, scale, lse, entropy, stream);
  // The gather kernel with no index: the logsumexp alone.
  return gather_logprobs_forward(logits, type, N, C, scale, nullptr, 0, nullptr, LogprobType::Float32, lse, stream);
}

const char* chunk_softmax(void* logits, LogitsType type, int64_t N, int64_t C, float scale, const float* lse, const int64_t* index, int64_t K,
                          int64_t begin, void* stream) {
  return launch_typed(type, N, [&](auto tag) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    chunk_softmax_kernel<T><<<N, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<T*>(logits), C, scale, lse, index, K, begin);
  });
}

const char* head_chunk_backward(void* logits, LogitsType type, int64_t N, int64_t C, float scale, const float* lse, const float* g_sum,
                                const float* g_entropy, const float* entropy, const int64_t* index, const float* g, int64_t K, int64_t begin,
                                void* stream) {
  if (g_entropy && !entropy) return "head_chunk_backward: an entropy gradient needs the entropy";
  return launch_typed(type, N, [&](auto tag) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    head_chunk_backward_kernel<T><<<N, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<T*>(logits), C, scale, lse, g_sum, g_entropy,
                                                                                         entropy, index, g, K, begin);
  });
}

}  // namespace prefix_rl::cuda
