// Per-instance state of the addon (one per Node environment, so worker threads each get their own).
#pragma once

#include <napi.h>

#include <memory>

#include "compute.h"

namespace prefix_rl {

struct DistributedState;

struct AddonData {
  // Declared before `compute`, so it outlives the compute thread that uses it (members die in reverse order).
  std::shared_ptr<DistributedState> distributed;
  Napi::FunctionReference tensor_class;
  Napi::FunctionReference cancel_token_class;
  Napi::FunctionReference model_class;
  std::unique_ptr<ComputeThread> compute;
};

AddonData& addon_data(Napi::Env env);

// Registration of the export groups, each defined in its own file: the handle classes (tensor.cc, cancel_token.cc,
// model/model_handle.cc, model/optimizer_handle.cc) and the function tables (ops.cc, ops/objectives.cc,
// model/safetensors_binding.cc, cuda_runtime.cc, distributed.cc). Every asynchronous entry point goes through run_async (async.h).
void register_tensor(Napi::Env env, Napi::Object exports);
void register_tensor_ops(Napi::Env env, Napi::Object exports);
void register_objectives(Napi::Env env, Napi::Object exports);
void register_model(Napi::Env env, Napi::Object exports);
void register_optimizer(Napi::Env env, Napi::Object exports);
void register_safetensors(Napi::Env env, Napi::Object exports);
void register_cuda(Napi::Env env, Napi::Object exports);
void register_distributed(Napi::Env env, Napi::Object exports);

// Each visible GPU (name, capability, memory, whether the fused kernels run on it); empty without a CUDA libtorch.
Napi::Array cuda_devices(Napi::Env env);

}  // namespace prefix_rl
