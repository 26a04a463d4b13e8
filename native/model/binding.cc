// JS surface of the model core: loadModel / initModel → NativeModel (forward, tokenLogprobs, generate, parameters, dispose),
// NativeAdamW and clipGradNorm, readSafetensors / writeSafetensors. Everything that touches weights, gradients or
// activations runs on the compute thread.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <memory>

#include "addon.h"
#include "common.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/optimizer.h"
#include "model/safetensors.h"
#include "tensor.h"

namespace prefix_rl {

namespace {

DecoderConfig parse_config(const Napi::Value& value) {
  if (!value.IsObject()) invalid_argument("model config must be an object");
  Napi::Object c = value.As<Napi::Object>();
  DecoderConfig config;
  config.vocab_size = arg_int(c.Get("vocabSize"), "vocabSize");
  config.hidden_size = arg_int(c.Get("hiddenSize"), "hiddenSize");
  config.intermediate_size = arg_int(c.Get("intermediateSize"), "intermediateSize");
  config.num_layers = arg_int(c.Get("numLayers"), "numLayers");
  config.num_heads = arg_int(c.Get("numHeads"), "numHeads");
  config.num_kv_heads = arg_int(c.Get("numKvHeads"), "numKvHeads");
  config.head_dim = arg_int(c.Get("headDim"), "headDim");
  config.rms_norm_eps = arg_number(c.Get("rmsNormEps"), "rmsNormEps");
  config.rope_theta = arg_number(c.Get("ropeTheta"), "ropeTheta");
  config.tie_word_embeddings = arg_bool(c.Get("tieWordEmbeddings"), "tieWordEmbeddings");
  config.qk_norm = arg_bool(c.Get("qkNorm"), "qkNorm");
  config.attention_bias = arg_bool(c.Get("attentionBias"), "attentionBias");
  config.mlp_bias = arg_bool(c.Get("mlpBias"), "mlpBias");
  Napi::Value scaling = c.Get("ropeScaling");
  if (scaling.IsObject()) {
    Napi::Object s = scaling.As<Napi::Object>();
    config.rope_scaling = Llama3RopeScaling{
        arg_number(s.Get("factor"), "ropeScaling.factor"),
        arg_number(s.Get("lowFreqFactor"), "ropeScaling.lowFreqFactor"),
        arg_number(s.Get("highFreqFactor"), "ropeScaling.highFreqFactor"),
        arg_int(s.Get("originalMaxPositionEmbeddings"), "ropeScaling.originalMaxPositionEmbeddings"),
    };
  } else if (!scaling.IsNull() && !scaling.IsUndefined()) {
    invalid_argument("ropeScaling must be an object or null");
  }
  return config;
}

std::vector<int64_t> arg_tokens(const Napi::Value& value, const std::string& name) {
  if (!value.IsArray()) invalid_argument(name + " must be an array of token ids");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> tokens;
  for (uint32_t i = 0; i < array.Length(); ++i) tokens.push_back(arg_int(array.Get(i), name.c_str()));
  return tokens;
}

SamplingOptions parse_sampling(const Napi::Value& value) {
  if (!value.IsObject()) invalid_argument("generate options must be an object");
  Napi::Object o = value.As<Napi::Object>();
  SamplingOptions options;
  options.max_new_tokens = arg_int(o.Get("maxNewTokens"), "maxNewTokens");
  options.temperature = opt_number(o, "temperature", options.temperature);
  options.top_k = opt_int(o, "topK", options.top_k);
  options.top_p = opt_number(o, "topP", options.top_p);
  int64_t seed = opt_int(o, "seed", 0);
  if (seed < 0) invalid_argument("seed must be a non-negative integer");
  options.seed = static_cast<uint64_t>(seed);
  options.top_logprobs = opt_int(o, "topLogprobs", 0);
  if (o.Has("eosTokenIds") && !o.Get("eosTokenIds").IsUndefined()) options.eos_token_ids = arg_tokens(o.Get("eosTokenIds"), "eosTokenIds");
  if (o.Has("stopSequences") && !o.Get("stopSequences").IsUndefined()) {
    Napi::Value stops = o.Get("stopSequences");
    if (!stops.IsArray()) invalid_argument("stopSequences must be an array of token id arrays");
    Napi::Array array = stops.As<Napi::Array>();
    for (uint32_t i = 0; i < array.Length(); ++i) options.stop_sequences.push_back(arg_tokens(array.Get(i), "stopSequences[" + std::to_string(i) + "]"));
  }
  return options;
}

std::vector<std::string> arg_strings(const Napi::Value& value, const char* name) {
  if (!value.IsArray()) invalid_argument(std::string(name) + " must be an array of strings");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < array.Length(); ++i) out.push_back(arg_string(array.Get(i), name));
  return out;
}

LoraConfig parse_lora(const Napi::Value& value) {
  if (!value.IsObject()) invalid_argument("LoRA config must be an object");
  Napi::Object o = value.As<Napi::Object>();
  return LoraConfig{arg_int(o.Get("rank"), "rank"), arg_number(o.Get("alpha"), "alpha"), opt_bool(o, "rslora", false),
                    arg_strings(o.Get("targetModules"), "targetModules")};
}

Napi::Object named_tensors(Napi::Env env, const NamedTensors& tensors) {
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [name, tensor] : tensors) out.Set(name, TensorHandle::wrap(env, tensor));
  return out;
}

// The JS handle over one loaded model. Jobs hold their own reference, so dispose() while a job runs is safe.
class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function define_class(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {
                           InstanceAccessor<&ModelHandle::dtype>("dtype"),
                           InstanceAccessor<&ModelHandle::device>("device"),
                           InstanceAccessor<&ModelHandle::is_disposed>("isDisposed"),
                           InstanceMethod<&ModelHandle::forward>("forward"),
                           InstanceMethod<&ModelHandle::token_logprobs>("tokenLogprobs"),
                           InstanceMethod<&ModelHandle::generate>("generate"),
                           InstanceMethod<&ModelHandle::parameters>("parameters"),
                           InstanceMethod<&ModelHandle::lora_parameters>("loraParameters"),
                           InstanceMethod<&ModelHandle::add_lora>("addLora"),
                           InstanceMethod<&ModelHandle::load_lora>("loadLora"),
                           InstanceMethod<&ModelHandle::merge_lora>("mergeLora"),
                           InstanceMethod<&ModelHandle::remove_lora>("removeLora"),
                           InstanceMethod<&ModelHandle::dispose>("dispose"),
                       });
  }

  explicit ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "NativeModel cannot be constructed directly; use loadModel");
    }
    auto* boxed = info[0].As<Napi::External<std::shared_ptr<Decoder>>>().Data();
    decoder_ = std::move(*boxed);
    delete boxed;
  }

  static Napi::Object wrap(const Napi::FunctionReference& model_class, std::shared_ptr<Decoder> decoder) {
    auto* boxed = new std::shared_ptr<Decoder>(std::move(decoder));
    try {
      return model_class.New({Napi::External<std::shared_ptr<Decoder>>::New(model_class.Env(), boxed)});
    } catch (...) {
      delete boxed;
      throw;
    }
  }

 private:
  std::shared_ptr<Decoder> decoder(const char* method) const {
    if (!decoder_) throw Error(ErrorCode::Disposed, std::string(method) + ": the model was disposed");
    return decoder_;
  }

  Napi::Value dtype(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtype_name(decoder("dtype")->dtype())); });
  }
  Napi::Value device(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), device_name(decoder("device")->device())); });
  }
  Napi::Value is_disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !decoder_); }

  // (inputIds, attentionMask | null, {checkpoint?, noGrad?}, cancel?) → Promise<NativeTensor>, for forward and
  // tokenLogprobs. noGrad records no autograd graph even while parameters require grad (scoring passes in training).
  template <at::Tensor (Decoder::*method)(const at::Tensor&, const at::Tensor&, bool) const>
  Napi::Value run(const Napi::CallbackInfo& info, const char* name) {
    return guarded(info, [&]() -> Napi::Value {
      std::shared_ptr<Decoder> model = decoder(name);
      at::Tensor input_ids = TensorHandle::unwrap(info[0], "inputIds");
      at::Tensor attention_mask = info[1].IsUndefined() || info[1].IsNull() ? at::Tensor() : TensorHandle::unwrap(info[1], "attentionMask");
      bool checkpoint = info[2].IsObject() && opt_bool(info[2].As<Napi::Object>(), "checkpoint", false);
      bool no_grad = info[2].IsObject() && opt_bool(info[2].As<Napi::Object>(), "noGrad", false);
      return addon_data(info.Env()).compute->submit(
          info.Env(),
          [model, input_ids, attention_mask, checkpoint, no_grad]() -> Completion {
            at::AutoGradMode grad_mode(!no_grad && at::GradMode::is_enabled());
            at::Tensor out = ((*model).*method)(input_ids, attention_mask, checkpoint);
            return [out](Napi::Env env) -> Napi::Value { return TensorHandle::wrap(env, out); };
          },
          arg_cancel_flag(info[3]));
    });
  }
  Napi::Value forward(const Napi::CallbackInfo& info) { return run<&Decoder::forward>(info, "forward"); }
  Napi::Value token_logprobs(const Napi::CallbackInfo& info) { return run<&Decoder::token_logprobs>(info, "tokenLogprobs"); }

  // (promptIds, promptMask | null, options, cancel?) → Promise<{tokens, logprobs, lengths, finishReasons,
  // topTokens?, topLogprobs?}> (CPU tensors).
  Napi::Value generate(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      std::shared_ptr<Decoder> model = decoder("generate");
      at::Tensor prompt_ids = TensorHandle::unwrap(info[0], "promptIds");
      at::Tensor prompt_mask = info[1].IsUndefined() || info[1].IsNull() ? at::Tensor() : TensorHandle::unwrap(info[1], "promptMask");
      SamplingOptions options = parse_sampling(info[2]);
      return addon_data(info.Env()).compute->submit(
          info.Env(),
          [model, prompt_ids, prompt_mask, options]() -> Completion {
            Generation result = prefix_rl::generate(*model, prompt_ids, prompt_mask, options);
            return [result](Napi::Env env) -> Napi::Value {
              Napi::Object out = Napi::Object::New(env);
              out.Set("tokens", TensorHandle::wrap(env, result.tokens));
              out.Set("logprobs", TensorHandle::wrap(env, result.logprobs));
              out.Set("lengths", TensorHandle::wrap(env, result.lengths));
              out.Set("finishReasons", TensorHandle::wrap(env, result.finish_reasons));
              if (result.top_tokens.defined()) {
                out.Set("topTokens", TensorHandle::wrap(env, result.top_tokens));
                out.Set("topLogprobs", TensorHandle::wrap(env, result.top_logprobs));
              }
              return out;
            };
          },
          arg_cancel_flag(info[3]));
    });
  }

  // { name: NativeTensor } sharing storage with the model: for saving, inspection and optimizers.
  Napi::Value parameters(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return named_tensors(info.Env(), decoder("parameters")->parameters()); });
  }
  Napi::Value lora_parameters(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return named_tensors(info.Env(), decoder("loraParameters")->lora_parameters()); });
  }

  // Runs `change` on the decoder in a compute-thread job (forward jobs read what it changes) → Promise<void>.
  template <typename Change>
  Napi::Value mutate(const Napi::CallbackInfo& info, const char* name, const Napi::Value& cancel, Change change) {
    std::shared_ptr<Decoder> model = decoder(name);
    return addon_data(info.Env()).compute->submit(
        info.Env(),
        [model, change]() -> Completion {
          change(*model);
          return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
        },
        arg_cancel_flag(cancel));
  }

  // addLora({rank, alpha, rslora, targetModules}, seed, cancel?)
  Napi::Value add_lora(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      LoraConfig config = parse_lora(info[0]);
      int64_t seed = arg_int(info[1], "seed");
      if (seed < 0) invalid_argument("seed must be a non-negative integer");
      return mutate(info, "addLora", info[2], [config, seed](Decoder& model) { model.add_lora(config, static_cast<uint64_t>(seed)); });
    });
  }

  // loadLora(config, files, cancel?): attaches an adapter and loads its tensors; on any error the model is unchanged.
  Napi::Value load_lora(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      LoraConfig config = parse_lora(info[0]);
      std::vector<std::string> files = arg_strings(info[1], "files");
      return mutate(info, "loadLora", info[2], [config, files](Decoder& model) {
        model.add_lora(config, 0);
        try {
          load_parameters(model.lora_parameters(), files, {});
        } catch (...) {
          model.remove_lora();
          throw;
        }
      });
    });
  }

  Napi::Value merge_lora(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return mutate(info, "mergeLora", info[0], [](Decoder& model) { model.merge_lora(); }); });
  }
  Napi::Value remove_lora(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return mutate(info, "removeLora", info[0], [](Decoder& model) { model.remove_lora(); }); });
  }

  Napi::Value dispose(const Napi::CallbackInfo& info) {
    decoder_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<Decoder> decoder_;
};

std::vector<at::Tensor> arg_tensors(const Napi::Value& value, const char* name) {
  if (!value.IsArray()) invalid_argument(std::string(name) + " must be an array of tensors");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<at::Tensor> tensors;
  for (uint32_t i = 0; i < array.Length(); ++i) tensors.push_back(TensorHandle::unwrap(array.Get(i), name));
  return tensors;
}

// new NativeAdamW(parameters, {beta1, beta2, eps, weightDecay}): step(lr, cancel?) and zeroGrad(cancel?) return
// Promises because they write the parameters and gradients that compute-thread jobs read.
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
      auto optimizer = optimizer_;
      return addon_data(info.Env()).compute->submit(
          info.Env(),
          [optimizer, lr]() -> Completion {
            optimizer->step(lr);
            return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
          },
          arg_cancel_flag(info[1]));
    });
  }

  Napi::Value zero_grad(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      auto optimizer = optimizer_;
      return addon_data(info.Env()).compute->submit(
          info.Env(),
          [optimizer]() -> Completion {
            optimizer->zero_grad();
            return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
          },
          arg_cancel_flag(info[0]));
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
    return addon_data(info.Env()).compute->submit(
        info.Env(),
        [parameters, max_norm]() -> Completion {
          double norm = clip_grad_norm(parameters, max_norm);
          return [norm](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, norm); };
        },
        arg_cancel_flag(info[2]));
  });
}

// loadModel(config, files, {dtype, device}, cancel?) → Promise<NativeModel>. `info.Data()` is the NativeModel class.
Napi::Value load_model(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    DecoderConfig config = parse_config(info[0]);
    std::vector<std::string> files = arg_strings(info[1], "files");
    if (files.empty()) invalid_argument("files must name at least one safetensors file");
    if (!info[2].IsObject()) invalid_argument("options must be an object");
    Napi::Object options = info[2].As<Napi::Object>();
    at::ScalarType dtype = parse_dtype(opt_string(options, "dtype", "float32"));
    at::Device device = parse_device(opt_string(options, "device", "cpu"));
    const auto* model_class = static_cast<const Napi::FunctionReference*>(info.Data());
    return addon_data(info.Env()).compute->submit(
        info.Env(),
        [config, files, dtype, device, model_class]() -> Completion {
          auto decoder = std::make_shared<Decoder>(config, dtype, device);
          // Checkpoints of tied models sometimes store the LM head as well; it is the embedding, so skip it.
          std::set<std::string> ignored;
          if (config.tie_word_embeddings) ignored.insert("lm_head.weight");
          load_parameters(decoder->parameters(), files, ignored);
          return [decoder, model_class](Napi::Env) -> Napi::Value { return ModelHandle::wrap(*model_class, decoder); };
        },
        arg_cancel_flag(info[3]));
  });
}

// initModel(config, {dtype, device, seed, initializerRange, paddingIdx}, cancel?) → Promise<NativeModel>: fresh weights as
// transformers' _init_weights draws them: every matrix (projections, embedding, an untied LM head) from
// N(0, initializerRange²), the embedding's padding row zero, norm weights 1, biases 0. Drawn on the CPU from one seeded
// generator in parameter order, so a seed gives the same model on every device.
Napi::Value init_model(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    DecoderConfig config = parse_config(info[0]);
    if (!info[1].IsObject()) invalid_argument("options must be an object");
    Napi::Object options = info[1].As<Napi::Object>();
    at::ScalarType dtype = parse_dtype(opt_string(options, "dtype", "float32"));
    at::Device device = parse_device(opt_string(options, "device", "cpu"));
    const double std = opt_number(options, "initializerRange", 0.02);
    if (!(std > 0) || !std::isfinite(std)) invalid_argument("initializerRange must be a positive number");
    const auto seed = static_cast<uint64_t>(opt_number(options, "seed", 0));
    const auto padding_idx = static_cast<int64_t>(opt_number(options, "paddingIdx", -1));  // -1: none
    const auto* model_class = static_cast<const Napi::FunctionReference*>(info.Data());
    return addon_data(info.Env()).compute->submit(
        info.Env(),
        [config, dtype, device, std, seed, padding_idx, model_class]() -> Completion {
          at::NoGradGuard no_grad;
          auto decoder = std::make_shared<Decoder>(config, dtype, device);
          at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
          auto ends_with = [](const std::string& name, const std::string& suffix) {
            return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
          };
          for (const auto& [name, parameter] : decoder->parameters()) {
            at::Tensor value;
            if (ends_with(name, "norm.weight")) {
              value = at::ones(parameter.sizes(), at::kFloat);
            } else if (ends_with(name, ".bias")) {
              value = at::zeros(parameter.sizes(), at::kFloat);
            } else {
              value = at::normal(0.0, std, parameter.sizes(), generator, at::TensorOptions().dtype(at::kFloat));
              if (name == "model.embed_tokens.weight" && padding_idx >= 0 && padding_idx < config.vocab_size) value[padding_idx].zero_();
            }
            parameter.copy_(value);
          }
          return [decoder, model_class](Napi::Env) -> Napi::Value { return ModelHandle::wrap(*model_class, decoder); };
        },
        arg_cancel_flag(info[2]));
  });
}

// readSafetensors(path, cancel?) → Promise<{tensors: {name: NativeTensor}, metadata: {key: string}}>. The tensors
// are CPU views over the mapped file.
Napi::Value read_safetensors(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::string path = arg_string(info[0], "path");
    return addon_data(info.Env()).compute->submit(
        info.Env(),
        [path]() -> Completion {
          std::shared_ptr<SafetensorsFile> file = SafetensorsFile::open(path);
          NamedTensors tensors;
          for (const auto& entry : file->entries()) tensors.emplace_back(entry.name, file->tensor(entry));
          return [tensors, metadata = file->metadata()](Napi::Env env) -> Napi::Value {
            Napi::Object out = Napi::Object::New(env);
            Napi::Object named = Napi::Object::New(env);
            for (const auto& [name, tensor] : tensors) named.Set(name, TensorHandle::wrap(env, tensor));
            Napi::Object meta = Napi::Object::New(env);
            for (const auto& [key, value] : metadata) meta.Set(key, value);
            out.Set("tensors", named);
            out.Set("metadata", meta);
            return out;
          };
        },
        arg_cancel_flag(info[1]));
  });
}

// writeSafetensors(path, {name: NativeTensor}, {key: string}, cancel?) → Promise<void>
Napi::Value write_safetensors_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::string path = arg_string(info[0], "path");
    if (!info[1].IsObject()) invalid_argument("tensors must be an object of tensors");
    Napi::Object object = info[1].As<Napi::Object>();
    Napi::Array names = object.GetPropertyNames();
    NamedTensors tensors;
    for (uint32_t i = 0; i < names.Length(); ++i) {
      std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      tensors.emplace_back(name, TensorHandle::unwrap(object.Get(name), ("tensor '" + name + "'").c_str()));
    }
    std::map<std::string, std::string> metadata;
    if (!info[2].IsUndefined() && !info[2].IsNull()) {
      if (!info[2].IsObject()) invalid_argument("metadata must be an object of strings");
      Napi::Object meta = info[2].As<Napi::Object>();
      Napi::Array keys = meta.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
        metadata[key] = arg_string(meta.Get(key), ("metadata '" + key + "'").c_str());
      }
    }
    return addon_data(info.Env()).compute->submit(
        info.Env(),
        [path, tensors, metadata]() -> Completion {
          write_safetensors(path, tensors, metadata);
          return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
        },
        arg_cancel_flag(info[3]));
  });
}

}  // namespace

void register_model(Napi::Env env, Napi::Object exports) {
  // The class reference lives as long as the environment; loadModel reaches it through its callback data.
  auto* model_class = new Napi::FunctionReference(Napi::Persistent(ModelHandle::define_class(env)));
  env.AddCleanupHook([model_class] { delete model_class; });
  exports.Set("NativeModel", model_class->Value());
  exports.Set("loadModel", Napi::Function::New(env, load_model, "loadModel", model_class));
  exports.Set("initModel", Napi::Function::New(env, init_model, "initModel", model_class));
  exports.Set("NativeAdamW", AdamWHandle::define_class(env));
  exports.Set("clipGradNorm", Napi::Function::New(env, clip_grad_norm_js, "clipGradNorm"));
  exports.Set("readSafetensors", Napi::Function::New(env, read_safetensors, "readSafetensors"));
  exports.Set("writeSafetensors", Napi::Function::New(env, write_safetensors_js, "writeSafetensors"));
}

}  // namespace prefix_rl
