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
                           InstanceMethod<&AdamWHandle::state>("state"),
                           InstanceMethod<&AdamWHandle::load_state>("loadState"),
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

  // state(cancel?) → Promise<{expAvg, expAvgSq, steps, stepsTaken}>: copies, read after the queued updates.
  Napi::Value state(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      return run_async(info.Env(), info[0], [optimizer = optimizer_]() -> Completion {
        return [state = optimizer->state()](Napi::Env env) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("expAvg", to_js(env, state.exp_avg));
          out.Set("expAvgSq", to_js(env, state.exp_avg_sq));
          Napi::Array steps = Napi::Array::New(env, state.steps.size());
          for (size_t i = 0; i < state.steps.size(); ++i) steps.Set(i, Napi::Number::New(env, static_cast<double>(state.steps[i])));
          out.Set("steps", steps);
          out.Set("stepsTaken", Napi::Number::New(env, static_cast<double>(state.steps_taken)));
          return out;
        };
      });
    });
  }

  // loadState({expAvg, expAvgSq, steps, stepsTaken}, cancel?) → Promise<void>, after the queued updates.
  Napi::Value load_state(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      if (!info[0].IsObject()) invalid_argument("AdamW state must be an object");
      Napi::Object o = info[0].As<Napi::Object>();
      AdamW::State state;
      state.exp_avg = arg_tensors(o.Get("expAvg"), "expAvg");
      state.exp_avg_sq = arg_tensors(o.Get("expAvgSq"), "expAvgSq");
      if (!o.Get("steps").IsArray()) invalid_argument("AdamW state: steps must be an array of integers");
      Napi::Array steps = o.Get("steps").As<Napi::Array>();
      for (uint32_t i = 0; i < steps.Length(); ++i) state.steps.push_back(arg_int(steps.Get(i), "steps[i]"));
      state.steps_taken = arg_int(o.Get("stepsTaken"), "stepsTaken");
      return run_async(info.Env(), info[1], [optimizer = optimizer_, state = std::move(state)]() { optimizer->load_state(state); });
    });
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
