// run_async: the one way a binding runs work on the compute thread. The binding parses its JS arguments on the JS
// thread (inside `guarded`), captures plain C++ values in `work`, and returns the promise run_async gives: `work`
// runs on the compute thread in submission order, and its result comes back through to_js on the JS thread. The
// call's CancelToken (undefined or null: none) skips a queued job and is what check_cancelled() polls while it runs.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "addon.h"
#include "cancel_token.h"
#include "compute.h"
#include "model/safetensors.h"
#include "tensor.h"

namespace prefix_rl {

// JS values of the results compute-thread work returns (JS thread only).
inline Napi::Value to_js(Napi::Env env, const at::Tensor& tensor) { return TensorHandle::wrap(env, tensor); }
inline Napi::Value to_js(Napi::Env env, double value) { return Napi::Number::New(env, value); }
inline Napi::Value to_js(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  Napi::Array out = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) out.Set(i, TensorHandle::wrap(env, tensors[i]));
  return out;
}
// { name: NativeTensor }, in the list's order.
inline Napi::Value to_js(Napi::Env env, const NamedTensors& tensors) {
  Napi::Object out = Napi::Object::New(env);
  // Defined, not assigned: a name such as "__proto__" (files are untrusted) becomes an own property like any other
  // instead of calling Object.prototype's setter, and a key made from the whole string keeps a NUL in it.
  for (const auto& [name, tensor] : tensors) {
    out.DefineProperty(Napi::PropertyDescriptor::Value(Napi::String::New(env, name), TensorHandle::wrap(env, tensor), napi_default_jsproperty));
  }
  return out;
}

// `work()` returns void (the promise resolves with undefined), a value with a to_js overload, or a Completion: a
// function the JS thread calls to build a result that needs the environment (a new handle object, a nested object).
template <typename Work>
Napi::Promise run_async(Napi::Env env, const Napi::Value& cancel, Work work) {
  using Result = std::invoke_result_t<Work&>;
  std::shared_ptr<CancelFlag> flag = arg_cancel_flag(cancel);
  ComputeThread& compute = *addon_data(env).compute;
  if constexpr (std::is_void_v<Result>) {
    return compute.submit(
        env,
        [work = std::move(work)]() mutable -> Completion {
          work();
          return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
        },
        std::move(flag));
  } else if constexpr (std::is_same_v<Result, Completion>) {
    return compute.submit(env, std::move(work), std::move(flag));
  } else {
    return compute.submit(
        env,
        [work = std::move(work)]() mutable -> Completion { return [result = work()](Napi::Env env) -> Napi::Value { return to_js(env, result); }; },
        std::move(flag));
  }
}

}  // namespace prefix_rl
