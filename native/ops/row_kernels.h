// CPU row kernels of the fused objectives. Each works on one row of logits ([V] values of a float type) and never
// materialises a [V]-sized temporary: log-softmax values are produced only at the gathered indices, and the
// backward writes the gradient row directly. Accumulation is in float for fp32/bf16/fp16 rows and double for fp64.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

namespace prefix_rl::kernels {

// acc_t: the accumulation type for a logits element type.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};
template <typename T>
using acc_t = typename Acc<T>::type;

// log Σ_v exp(scale · x_v): max pass, then a sum-of-exp pass. Summed in acc_t<T>, returned in double: the final
// max + log(sum) is not rounded to float, so a log-prob x·scale − lse formed from it is rounded only once.
template <typename T>
double row_logsumexp(const T* x, int64_t V, acc_t<T> scale);

// Top-k of x by value (descending; equal values keep the lower index first). Writes k ids and values.
template <typename T>
void row_topk(const T* x, int64_t V, int64_t k, int64_t* ids, acc_t<T>* values);

// The running list behind row_topk, largest first. Every implementation (scalar and vector) offers values through it
// in increasing v, so all agree: ties keep the lower index, and NaN never enters once the k slots are filled.
template <typename A>
struct TopKList {
  int64_t k;
  int64_t* ids;
  A* values;
  int64_t filled = 0;

  bool full() const { return filled == k; }
  A threshold() const { return values[k - 1]; }
  void offer(A value, int64_t v) {
    if (filled == k && !(value > values[k - 1])) return;  // the common case: not in the top k
    int64_t slot = filled < k ? filled++ : k - 1;
    while (slot > 0 && value > values[slot - 1]) {
      values[slot] = values[slot - 1];
      ids[slot] = ids[slot - 1];
      --slot;
    }
    values[slot] = value;
    ids[slot] = v;
  }
};

// grad_v = scale · (Σ_k g_k [v = ids_k] − (Σ_k g_k) · exp(scale · x_v − lse)), written in T.
template <typename T>
void row_logprob_backward(const T* x, int64_t V, acc_t<T> scale, acc_t<T> lse, const int64_t* ids, const acc_t<T>* g, int64_t k, T* grad);

// Entropy of softmax(scale · x) given the row's lse: H = Σ_v p_v·(lse − scale·x_v), a sum of non-negative terms (no
// cancellation, unlike lse − Σ p·z). Terms with p_v < e^−87 count as zero, so −inf logits are fine.
template <typename T>
acc_t<T> row_entropy(const T* x, int64_t V, acc_t<T> scale, acc_t<T> lse);

// grad_v = g · ∂H/∂x_v = g · scale · p_v·(lse − scale·x_v − H), written in T (exact zeros when g = 0).
template <typename T>
void row_entropy_backward(const T* x, int64_t V, acc_t<T> scale, acc_t<T> lse, acc_t<T> entropy, acc_t<T> g, T* grad);

// The fused LM head's backward over one vocabulary chunk of a row: x [C] holds the chunk's unscaled logits and is
// overwritten with ∂L/∂x_v = scale·p_v·(g_H·(lse − z_v − H) − g_sum), plus scale·g_j at the chunk's columns cols[j]
// (z = scale·x, p = e^{z − lse}; g_sum sums all the row's log-prob gradients, inside the chunk or not; g_H and H are
// the entropy's gradient and value, g_H = 0 without one). Exact zeros for a row with no gradient.
template <typename T>
void row_head_backward(T* x, int64_t C, acc_t<T> scale, acc_t<T> lse, acc_t<T> g_sum, acc_t<T> g_entropy, acc_t<T> entropy, const int64_t* cols,
                       const acc_t<T>* g, int64_t k);

// x_v ← p_v = exp(scale · x_v − lse), in place and rounded to T: a vocabulary chunk's softmax given the chunk's own
// lse, for the fused head's expectations Σ_v p_v·W_v. A row of −inf logits (lse = −inf) has no mass: zeros.
template <typename T>
void row_softmax(T* x, int64_t C, acc_t<T> scale, acc_t<T> lse);

}  // namespace prefix_rl::kernels
