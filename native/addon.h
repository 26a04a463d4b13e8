// Per-instance state of the addon (one per Node environment, so worker threads each get their own).
#pragma once

#include <napi.h>

#include <memory>

#include "compute.h"

namespace prefix_rl {

struct AddonData {
  Napi::FunctionReference tensor_class;
  Napi::FunctionReference cancel_token_class;
  std::unique_ptr<ComputeThread> compute;
};

AddonData& addon_data(Napi::Env env);

// Reads an optional CancelToken argument (undefined/null → no cancellation).
std::shared_ptr<CancelFlag> arg_cancel_flag(const Napi::Value& value);

// Registration of the export groups, each defined in its own file.
void register_tensor_ops(Napi::Env env, Napi::Object exports);
void register_objectives(Napi::Env env, Napi::Object exports);
void register_model(Napi::Env env, Napi::Object exports);

}  // namespace prefix_rl
