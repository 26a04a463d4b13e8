#include "compute.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

namespace prefix_rl {

struct ComputeThread::Job {
  Work work;
  std::shared_ptr<CancelFlag> cancel;
  Napi::Promise::Deferred deferred;
};

struct ComputeThread::Delivery {
  std::unique_ptr<Job> job;
  Completion completion;
  std::exception_ptr error;
};

ComputeThread::ComputeThread(Napi::Env env, int num_threads) : num_threads_(num_threads) {
  tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function(), "prefix-rl compute", 0, 1);
  tsfn_.Unref(env);
  thread_ = std::thread([this] { loop(); });
}

ComputeThread::~ComputeThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  tsfn_.Abort();
}

Napi::Promise ComputeThread::submit(Napi::Env env, Work work, std::shared_ptr<CancelFlag> cancel) {
  auto job = std::make_unique<Job>(Job{std::move(work), std::move(cancel), Napi::Promise::Deferred::New(env)});
  Napi::Promise promise = job->deferred.Promise();
  if (pending_++ == 0) tsfn_.Ref(env);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return promise;
}

void ComputeThread::set_num_threads(int num_threads) {
  // The JS thread's first (for its synchronous ops): a count libtorch refuses is never handed to the compute thread.
  at::set_num_threads(num_threads);
  num_threads_.store(num_threads);
}

void ComputeThread::loop() {
  at::init_num_threads();
  int applied_threads = -1;
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    auto delivery = new Delivery{std::move(job), nullptr, nullptr};
    set_current_cancel_flag(delivery->job->cancel.get());
    try {
      // Inside the job's try: an exception here fails the job, never the thread (std::terminate).
      if (applied_threads != num_threads_.load()) {
        applied_threads = num_threads_.load();
        at::set_num_threads(applied_threads);
      }
      check_cancelled();
      delivery->completion = delivery->job->work();
    } catch (...) {
      delivery->error = std::current_exception();
    }
    set_current_cancel_flag(nullptr);
    // Returns non-ok only after Abort() at teardown, when nobody waits for the result any more.
    if (tsfn_.NonBlockingCall(delivery, [this](Napi::Env env, Napi::Function fn, Delivery* d) { deliver(env, fn, this, d); }) != napi_ok) {
      delete delivery;
    }
  }
}

void ComputeThread::deliver(Napi::Env env, Napi::Function, ComputeThread* self, Delivery* raw) {
  std::unique_ptr<Delivery> delivery(raw);
  if (env == nullptr) return;  // the environment is being torn down
  Napi::HandleScope scope(env);
  if (--self->pending_ == 0) self->tsfn_.Unref(env);
  auto& deferred = delivery->job->deferred;
  if (delivery->error) {
    deferred.Reject(to_js_error(env, delivery->error).Value());
    return;
  }
  try {
    deferred.Resolve(delivery->completion(env));
  } catch (...) {
    deferred.Reject(to_js_error(env, std::current_exception()).Value());
  }
}

}  // namespace prefix_rl
