// CancelToken: the JS handle over one CancelFlag. lib/tensor/cancel.ts connects it to an AbortSignal; a binding
// reads it from its last argument with arg_cancel_flag and hands the flag to the compute thread (see async.h).
#pragma once

#include <napi.h>

#include <memory>

#include "compute.h"

namespace prefix_rl {

class CancelToken : public Napi::ObjectWrap<CancelToken> {
 public:
  static Napi::Function define_class(Napi::Env env);
  explicit CancelToken(const Napi::CallbackInfo& info);
  std::shared_ptr<CancelFlag> flag() const { return flag_; }

 private:
  Napi::Value cancel(const Napi::CallbackInfo& info);
  Napi::Value cancelled(const Napi::CallbackInfo& info);
  std::shared_ptr<CancelFlag> flag_;
};

// Reads an optional CancelToken argument (undefined/null → no cancellation).
std::shared_ptr<CancelFlag> arg_cancel_flag(const Napi::Value& value);

}  // namespace prefix_rl
