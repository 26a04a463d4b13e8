// NativeTensor: the JS handle over one at::Tensor. The handle owns a reference; dispose() drops it at once,
// garbage collection drops it eventually. Native work that uses a tensor holds its own reference, so a tensor
// disposed by JS while a job runs stays valid for that job.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <atomic>
#include <optional>

namespace prefix_rl {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function define_class(Napi::Env env);
  // Wraps `tensor` in a new JS NativeTensor (JS thread only).
  static Napi::Object wrap(Napi::Env env, at::Tensor tensor);
  // The tensor behind a JS value; throws a clear error for a non-tensor or a disposed one.
  static const at::Tensor& unwrap(const Napi::Value& value, const char* name);
  static bool is_tensor(const Napi::Value& value);
  // Handles alive now (not disposed, not collected): the leak check of tests and scopes.
  static int64_t live_count() { return live_.load(); }

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

 private:
  const at::Tensor& tensor(const char* method) const;
  void release();

  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value numel(const Napi::CallbackInfo& info);
  Napi::Value is_disposed(const Napi::CallbackInfo& info);
  Napi::Value requires_grad(const Napi::CallbackInfo& info);
  Napi::Value set_requires_grad(const Napi::CallbackInfo& info);
  Napi::Value grad(const Napi::CallbackInfo& info);
  Napi::Value zero_grad(const Napi::CallbackInfo& info);
  Napi::Value backward(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value to_typed_array(const Napi::CallbackInfo& info);
  Napi::Value item(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  std::optional<at::Tensor> tensor_;
  static std::atomic<int64_t> live_;
};

// An array of NativeTensors (the error names the argument).
std::vector<at::Tensor> arg_tensors(const Napi::Value& value, const char* name);

// Copies a tensor to a new JS typed array (float32/float64/int32/int64/uint8/bool; bf16 and fp16 read as float32).
Napi::Value tensor_to_typed_array(Napi::Env env, const at::Tensor& tensor);
// Copies a JS typed array into a new CPU tensor of `shape` and `dtype`, checking length and element type.
at::Tensor tensor_from_typed_array(const Napi::TypedArray& array, const std::vector<int64_t>& shape, at::ScalarType dtype);

}  // namespace prefix_rl
