// A cache of large CPU output buffers (the fused ops' [N, V] logits gradients), reused across calls.
//
// Why: on Linux every fresh page of a large allocation is paid for by a page fault that zeroes it, and at these sizes
// that costs more than the fused backward pass itself (about 0.45 ms per MiB on the 2-core CI VM, against ~0.2 ms
// per MiB for the pass). A training loop asks for the same [N, V] shape every step, and the previous step's gradient
// is freed by then, so a size-keyed free list turns those faults into a reuse — what torch's CUDA caching allocator
// does on GPUs, kept here to the buffers the fused ops write.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace prefix_rl {

// An uninitialised CPU tensor like at::empty(sizes, options), whose storage comes from, and returns to, the cache
// when it is at least kMinCachedBytes. The cache holds freed buffers up to its limit (below).
at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

constexpr int64_t kMinCachedBytes = int64_t{1} << 20;

struct BufferCacheStats {
  int64_t cached_bytes;  // freed buffers held for reuse
  int64_t limit_bytes;
  int64_t hits, misses;
};
BufferCacheStats buffer_cache_stats();

// Frees every cached buffer (buffers in use are unaffected) and sets the limit; a limit of 0 turns caching off.
// The default limit is PREFIX_RL_BUFFER_CACHE_MB (MiB) or 4096 MiB.
void set_buffer_cache_limit(int64_t bytes);
void release_buffer_cache();

}  // namespace prefix_rl
