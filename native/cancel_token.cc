#include "cancel_token.h"

#include "addon.h"
#include "common.h"

namespace prefix_rl {

Napi::Function CancelToken::define_class(Napi::Env env) {
  return DefineClass(env, "CancelToken", {InstanceMethod<&CancelToken::cancel>("cancel"), InstanceAccessor<&CancelToken::cancelled>("cancelled")});
}

CancelToken::CancelToken(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelToken>(info), flag_(std::make_shared<CancelFlag>()) {}

Napi::Value CancelToken::cancel(const Napi::CallbackInfo& info) {
  flag_->cancelled.store(true);
  return info.Env().Undefined();
}

Napi::Value CancelToken::cancelled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), flag_->cancelled.load()); }

std::shared_ptr<CancelFlag> arg_cancel_flag(const Napi::Value& value) {
  if (value.IsUndefined() || value.IsNull()) return nullptr;
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addon_data(env).cancel_token_class.Value())) {
    invalid_argument("cancel must be a CancelToken");
  }
  return CancelToken::Unwrap(value.As<Napi::Object>())->flag();
}

}  // namespace prefix_rl
