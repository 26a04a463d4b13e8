#include "ops/buffer_cache.h"

#include <cstdlib>
#include <map>
#include <mutex>

namespace prefix_rl {

namespace {

constexpr size_t kAlignment = 64;

class BufferCache {
 public:
  BufferCache() {
    const char* value = std::getenv("PREFIX_RL_BUFFER_CACHE_MB");
    limit_ = (value ? std::atoll(value) : 4096) << 20;
    if (limit_ < 0) limit_ = 0;
  }

  void* acquire(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end()) {
        void* block = it->second;
        free_.erase(it);
        cached_ -= static_cast<int64_t>(bytes);
        ++hits_;
        return block;
      }
      ++misses_;
    }
    void* block = nullptr;
    if (posix_memalign(&block, kAlignment, bytes) != 0) throw std::bad_alloc();
    return block;
  }

  // Called by the storage deleter, on whichever thread drops the last reference.
  void give_back(void* block, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + static_cast<int64_t>(bytes) <= limit_) {
        free_.emplace(bytes, block);
        cached_ += static_cast<int64_t>(bytes);
        return;
      }
    }
    std::free(block);
  }

  void release(int64_t new_limit) {
    std::multimap<size_t, void*> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      dropped.swap(free_);
      cached_ = 0;
      if (new_limit >= 0) limit_ = new_limit;
    }
    for (auto& [bytes, block] : dropped) std::free(block);
  }

  BufferCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {cached_, limit_, hits_, misses_};
  }

 private:
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  int64_t cached_ = 0, limit_ = 0, hits_ = 0, misses_ = 0;
};

// Never destroyed: tensors may be freed by other static destructors or threads after main's.
BufferCache& cache() {
  static BufferCache* instance = new BufferCache();
  return *instance;
}

}  // namespace

at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const int64_t bytes = c10::multiply_integers(sizes) * static_cast<int64_t>(c10::elementSize(c10::typeMetaToScalarType(options.dtype())));
  if (!options.device().is_cpu() || bytes < kMinCachedBytes || cache().stats().limit_bytes == 0) return at::empty(sizes, options);
  void* block = cache().acquire(static_cast<size_t>(bytes));
  return at::from_blob(
      block, sizes, [bytes](void* data) { cache().give_back(data, static_cast<size_t>(bytes)); }, options);
}

BufferCacheStats buffer_cache_stats() { return cache().stats(); }
void set_buffer_cache_limit(int64_t bytes) { cache().release(bytes < 0 ? 0 : bytes); }
void release_buffer_cache() { cache().release(-1); }

}  // namespace prefix_rl
