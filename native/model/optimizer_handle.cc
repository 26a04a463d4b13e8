// NativeAdamW, the JS handle over one AdamW, and clipGradNorm. step() and zeroGrad() return promises because they
// write the parameters and gradients that compute-thread jobs read.
#include "addon.h"
#include "async.h"
#include "common.h"
#include "model/optimizer.h"
#include "tensor.h"

namespace prefix_rl {

namespace {

// new NativeAdamW(parameters, {beta1, beta2, eps, weightDecay}): step(lr, cancel?), zeroGrad(cancel?), steps.
class AdamWHandle : public Napi::ObjectWrap<AdamWHandle> {
 public:
  static Napi::Function define_class(Napi::Env env) {
    return DefineClass(env, "NativeAdamW",
                       {
                           InstanceMethod<&AdamWHandle::step>("step"),
                           InstanceMethod<&AdamWHandle::zero_grad>("zeroGrad"),
                           InstanceAccessor<&AdamWHandle::steps>("steps"),
                       });
  }

  explicit AdamWHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AdamWHandle>(info) {
    guarded(info, [&]() -> Napi::Value {
      if (!info[1].IsObject()) invalid_argument("AdamW options must be an object");
      Napi::Object o = info[1].As<Napi::Object>();
      AdamWOptions options;
      options.beta1 = opt_number(o, "beta1", options.beta1);
      options.beta2 = opt_number(o, "beta2", options.beta2);
      options.eps = opt_number(o, "eps", options.eps);
      options.weight_decay = opt_number(o, "weightDecay", options.weight_decay);
      optimizer_ = std::make_shared<AdamW>(arg_tensors(info[0], "parameters"), options);
      return info.Env().Undefined();
    });
  }

 private:
  Napi::Value step(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      double lr = arg_number(info[0], "lr");
      return run_async(info.Env(), info[1], [optimizer = optimizer_, lr]() { optimizer->step(lr); });
    });
  }

  Napi::Value zero_grad(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return run_async(info.Env(), info[0], [optimizer = optimizer_]() { optimizer->zero_grad(); }); });
  }

  Napi::Value steps(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(optimizer_->steps())); }

  std::shared_ptr<AdamW> optimizer_;
};

// clipGradNorm(parameters, maxNorm, cancel?) → Promise<number>: the global gradient norm before clipping.
Napi::Value clip_grad_norm_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::vector<at::Tensor> parameters = arg_tensors(info[0], "parameters");
    double max_norm = arg_number(info[1], "maxNorm");
    return run_async(info.Env(), info[2], [parameters, max_norm]() { return clip_grad_norm(parameters, max_norm); });
  });
}

}  // namespace

void register_optimizer(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeAdamW", AdamWHandle::define_class(env));
  exports.Set("clipGradNorm", Napi::Function::New(env, clip_grad_norm_js, "clipGradNorm"));
}

}  // namespace prefix_rl
