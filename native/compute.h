// The compute thread: all asynchronous torch work of one addon instance runs here, in submission order.
// A dedicated thread (rather than libuv's pool) because the intra-op thread count is per OS thread and because one
// queue gives a deterministic order of operations. Results come back to JS through one ThreadSafeFunction, which
// keeps the event loop alive only while jobs are pending.
#pragma once

#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "common.h"

namespace prefix_rl {

struct CancelFlag {
  std::atomic<bool> cancelled{false};
};

// Built on the compute thread, called on the JS thread to turn native results into JS values.
using Completion = std::function<Napi::Value(Napi::Env)>;
using Work = std::function<Completion()>;

class ComputeThread {
 public:
  ComputeThread(Napi::Env env, int num_threads);
  ~ComputeThread();

  // Queues `work`; the returned promise settles with its completion or rejects with its error.
  // `cancel` (may be null) aborts the job before it starts, or inside it at check_cancelled().
  Napi::Promise submit(Napi::Env env, Work work, std::shared_ptr<CancelFlag> cancel);

  // Sets the intra-op thread count on the compute thread (and returns once it is set).
  void set_num_threads(int num_threads);
  int num_threads() const { return num_threads_.load(); }
  int pending() const { return pending_; }

 private:
  struct Job;
  struct Delivery;
  void loop();
  static void deliver(Napi::Env env, Napi::Function, ComputeThread* self, Delivery* delivery);

  Napi::ThreadSafeFunction tsfn_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stopping_ = false;
  int pending_ = 0;  // touched on the JS thread only
  std::atomic<int> num_threads_;
  std::thread thread_;
};

}  // namespace prefix_rl
