// NativeModel, the JS handle over one Decoder, and the functions that make one: loadModel (weights from safetensors
// files) and initModel (fresh weights). Everything that touches weights, gradients or activations runs on the
// compute thread (run_async); a job holds its own reference to the decoder, so dispose() while a job runs is safe.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <memory>
#include <optional>
#include <set>

#include "addon.h"
#include "async.h"
#include "common.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/safetensors.h"
#include "tensor.h"

namespace prefix_rl {

namespace {

// ---- the model config, read field by field from the lists in decoder.h ----

void read_field(const Napi::Value& value, const std::string& key, int64_t& out) { out = arg_int(value, key.c_str()); }
void read_field(const Napi::Value& value, const std::string& key, double& out) { out = arg_number(value, key.c_str()); }
void read_field(const Napi::Value& value, const std::string& key, bool& out) { out = arg_bool(value, key.c_str()); }
void read_field(const Napi::Value& value, const std::string& key, std::optional<Llama3RopeScaling>& out) {
  if (value.IsNull() || value.IsUndefined()) {
    out.reset();
    return;
  }
  if (!value.IsObject()) invalid_argument(key + " must be an object or null");
  Napi::Object object = value.As<Napi::Object>();
  Llama3RopeScaling scaling;
#define PREFIX_RL_READ_FIELD(type, name, js_key) read_field(object.Get(js_key), key + "." + js_key, scaling.name);
  PREFIX_RL_LLAMA3_ROPE_FIELDS(PREFIX_RL_READ_FIELD)
#undef PREFIX_RL_READ_FIELD
  out = scaling;
}

DecoderConfig parse_config(const Napi::Value& value) {
  if (!value.IsObject()) invalid_argument("model config must be an object");
  Napi::Object object = value.As<Napi::Object>();
  DecoderConfig config;
#define PREFIX_RL_READ_FIELD(type, name, js_key) read_field(object.Get(js_key), js_key, config.name);
  PREFIX_RL_DECODER_FIELDS(PREFIX_RL_READ_FIELD)
#undef PREFIX_RL_READ_FIELD
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
    for (uint32_t i = 0; i < array.Length(); ++i)
      options.stop_sequences.push_back(arg_tokens(array.Get(i), "stopSequences[" + std::to_string(i) + "]"));
  }
  return options;
}

LoraConfig parse_lora(const Napi::Value& value) {
  if (!value.IsObject()) invalid_argument("LoRA config must be an object");
  Napi::Object o = value.As<Napi::Object>();
  return LoraConfig{arg_int(o.Get("rank"), "rank"), arg_number(o.Get("alpha"), "alpha"), opt_bool(o, "rslora", false),
                    arg_strings(o.Get("targetModules"), "targetModules")};
}

// {dtype, device, masterWeights} of loadModel and initModel.
struct Placement {
  at::ScalarType dtype;
  at::Device device;
  bool master_weights;
};
Placement parse_placement(const Napi::Object& options) {
  const at::Device device = parse_device(opt_string(options, "device", "cpu"));
  if (device.is_meta()) invalid_argument("a model lives on cpu or cuda, not meta");
  return {parse_dtype(opt_string(options, "dtype", "float32")), device, opt_bool(options, "masterWeights", false)};
}

// PEFT saves the base head's weight beside an adapter on lm_head (save_embedding_layers, on by default there): it
// must be the weight the adapter sits on, this model's head, to within the saved dtype's rounding.
constexpr const char* kPeftHeadBase = "base_model.model.lm_head.base_layer.weight";
void check_saved_head_base(const Decoder& model, const SafetensorsFiles& files) {
  for (const auto& file : files) {
    for (const auto& entry : file->entries()) {
      if (entry.name != kPeftHeadBase) continue;
      at::NoGradGuard no_grad;
      at::Tensor head = model.head_weight().detach().to(at::kCPU, at::kFloat);
      if (entry.shape != head.sizes().vec() || !at::allclose(file->tensor(entry).to(at::kFloat), head, /*rtol=*/1e-2, /*atol=*/1e-5)) {
        invalid_argument("the adapter in " + file->path() + " carries an lm_head base weight (" + kPeftHeadBase +
                         ") that differs from this model's head: it was trained on another base (or with the head itself trained)");
      }
    }
  }
}

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function define_class(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {
                           InstanceAccessor<&ModelHandle::dtype>("dtype"),
                           InstanceAccessor<&ModelHandle::parameter_dtype>("parameterDtype"),
                           InstanceAccessor<&ModelHandle::device>("device"),
                           InstanceAccessor<&ModelHandle::is_disposed>("isDisposed"),
                           InstanceMethod<&ModelHandle::forward>("forward"),
                           InstanceMethod<&ModelHandle::token_logprobs>("tokenLogprobs"),
                           InstanceMethod<&ModelHandle::head_input>("headInput"),
                           InstanceMethod<&ModelHandle::generate>("generate"),
                           InstanceMethod<&ModelHandle::parameters>("parameters"),
                           InstanceMethod<&ModelHandle::non_finite_parameters>("nonFiniteParameters"),
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

  // A Completion that wraps `decoder` in a new NativeModel on the JS thread.
  static Completion wrapping(std::shared_ptr<Decoder> decoder) {
    return [decoder](Napi::Env env) -> Napi::Value {
      auto* boxed = new std::shared_ptr<Decoder>(decoder);
      try {
        return addon_data(env).model_class.New({Napi::External<std::shared_ptr<Decoder>>::New(env, boxed)});
      } catch (...) {
        delete boxed;
        throw;
      }
    };
  }

 private:
  std::shared_ptr<Decoder> decoder(const char* method) const {
    if (!decoder_) throw Error(ErrorCode::Disposed, std::string(method) + ": the model was disposed");
    return decoder_;
  }

  Napi::Value dtype(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtype_name(decoder("dtype")->dtype())); });
  }
  Napi::Value parameter_dtype(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtype_name(decoder("parameterDtype")->parameter_dtype())); });
  }
  Napi::Value device(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), device_name(decoder("device")->device())); });
  }
  Napi::Value is_disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !decoder_); }

  // The options of forward and tokenLogprobs: the logits range is forward's, fusedHead tokenLogprobs'.
  struct ForwardFlags {
    bool checkpoint;
    int64_t logits_start, logits_length;
    bool fused_head;
  };

  // (inputIds, attentionMask | null, {checkpoint?, noGrad?, logitsStart?, logitsLength?, fusedHead?}, cancel?) →
  // Promise<NativeTensor>, for forward and tokenLogprobs. noGrad records no autograd graph even while parameters
  // require grad (scoring passes in training).
  template <typename Call>
  Napi::Value run(const Napi::CallbackInfo& info, const char* name, Call call) {
    return guarded(info, [&]() -> Napi::Value {
      std::shared_ptr<Decoder> model = decoder(name);
      at::Tensor input_ids = TensorHandle::unwrap(info[0], "inputIds");
      at::Tensor attention_mask = info[1].IsUndefined() || info[1].IsNull() ? at::Tensor() : TensorHandle::unwrap(info[1], "attentionMask");
      const bool has_options = info[2].IsObject();
      const Napi::Object options = has_options ? info[2].As<Napi::Object>() : Napi::Object::New(info.Env());
      const bool checkpoint = opt_bool(options, "checkpoint", false);
      const bool no_grad = opt_bool(options, "noGrad", false);
      const int64_t start = opt_int(options, "logitsStart", 0), length = opt_int(options, "logitsLength", -1);
      const bool fused_head = opt_bool(options, "fusedHead", true);
      return run_async(info.Env(), info[3], [model, input_ids, attention_mask, checkpoint, no_grad, start, length, fused_head, call]() {
        at::AutoGradMode grad_mode(!no_grad && at::GradMode::is_enabled());
        return call(*model, input_ids, attention_mask, ForwardFlags{checkpoint, start, length, fused_head});
      });
    });
  }
  Napi::Value forward(const Napi::CallbackInfo& info) {
    return run(info, "forward", [](const Decoder& m, const at::Tensor& ids, const at::Tensor& mask, const ForwardFlags& f) {
      return m.forward(ids, mask, f.checkpoint, f.logits_start, f.logits_length);
    });
  }
  // Same arguments as forward → Promise<{hidden, weight, loraHidden?, loraWeight?}>: the LM head's input at the
  // logits positions, its weight and, with a LoRA on lm_head, its low-rank term, for the fused head (headLogprobs,
  // distrl objectives), with no logits built.
  Napi::Value head_input(const Napi::CallbackInfo& info) {
    return run(info, "headInput", [](const Decoder& m, const at::Tensor& ids, const at::Tensor& mask, const ForwardFlags& f) {
      at::Tensor hidden = m.final_hidden(ids, mask, f.checkpoint, f.logits_start, f.logits_length).contiguous();
      NamedTensors out{{"hidden", hidden}, {"weight", m.head_weight()}};
      if (HeadLora lora = m.head_lora(hidden); lora.defined()) {
        out.emplace_back("loraHidden", lora.hidden);
        out.emplace_back("loraWeight", lora.weight);
      }
      return out;
    });
  }
  Napi::Value token_logprobs(const Napi::CallbackInfo& info) {
    return run(info, "tokenLogprobs", [](const Decoder& m, const at::Tensor& ids, const at::Tensor& mask, const ForwardFlags& f) {
      return m.token_logprobs(ids, mask, f.checkpoint, f.fused_head);
    });
  }

  // (promptIds, promptMask | null, options, cancel?) → Promise<{tokens, logprobs, lengths, finishReasons,
  // topTokens?, topLogprobs?}> (CPU tensors). options.onStep(tokens, logprobs, produced), when given, is called on
  // the JS thread after each step (number arrays, one entry per row); the promise's result is complete on its own.
  Napi::Value generate(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      std::shared_ptr<Decoder> model = decoder("generate");
      at::Tensor prompt_ids = TensorHandle::unwrap(info[0], "promptIds");
      at::Tensor prompt_mask = info[1].IsUndefined() || info[1].IsNull() ? at::Tensor() : TensorHandle::unwrap(info[1], "promptMask");
      SamplingOptions options = parse_sampling(info[2]);
      std::shared_ptr<Napi::ThreadSafeFunction> stream;
      Napi::Value on_step = info[2].As<Napi::Object>().Get("onStep");
      if (on_step.IsFunction()) {
        stream = std::shared_ptr<Napi::ThreadSafeFunction>(
            new Napi::ThreadSafeFunction(Napi::ThreadSafeFunction::New(info.Env(), on_step.As<Napi::Function>(), "generate-step", 0, 1)),
            [](Napi::ThreadSafeFunction* f) {
              f->Release();
              delete f;
            });
        options.on_step = [stream](const std::vector<int64_t>& tokens, const std::vector<float>& logprobs, const std::vector<uint8_t>& produced) {
          struct StepData {
            std::vector<int64_t> tokens;
            std::vector<float> logprobs;
            std::vector<uint8_t> produced;
          };
          auto* data = new StepData{tokens, logprobs, produced};
          const napi_status status = stream->NonBlockingCall(data, [](Napi::Env env, Napi::Function callback, StepData* step) {
            auto array = [&](const auto& values) {
              Napi::Array out = Napi::Array::New(env, values.size());
              for (size_t i = 0; i < values.size(); ++i) out.Set(i, Napi::Number::New(env, static_cast<double>(values[i])));
              return out;
            };
            // A throwing callback is reported as an uncaught exception by Node; the generation goes on. Owned here,
            // so that the throw (a C++ exception under NAPI_CPP_EXCEPTIONS) still frees the step.
            std::unique_ptr<StepData> owned(step);
            callback.Call({array(owned->tokens), array(owned->logprobs), array(owned->produced)});
          });
          if (status != napi_ok) delete data;
        };
      }
      return run_async(info.Env(), info[3], [model, prompt_ids, prompt_mask, options, stream]() -> Completion {
        Generation result = prefix_rl::generate(*model, prompt_ids, prompt_mask, options);
        return [result](Napi::Env env) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("tokens", to_js(env, result.tokens));
          out.Set("logprobs", to_js(env, result.logprobs));
          out.Set("lengths", to_js(env, result.lengths));
          out.Set("finishReasons", to_js(env, result.finish_reasons));
          if (result.top_tokens.defined()) {
            out.Set("topTokens", to_js(env, result.top_tokens));
            out.Set("topLogprobs", to_js(env, result.top_logprobs));
          }
          return out;
        };
      });
    });
  }

  // { name: NativeTensor } sharing storage with the model: for saving, inspection and optimizers.
  Napi::Value parameters(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return to_js(info.Env(), decoder("parameters")->parameters()); });
  }
  // nonFiniteParameters(cancel?) → Promise<string[]>: the parameters holding a NaN or an infinity (their sum in
  // float64 is not finite: one pass, no temporary the size of the weights).
  Napi::Value non_finite_parameters(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      return run_async(info.Env(), info[0], [model = decoder("nonFiniteParameters")]() -> Completion {
        at::NoGradGuard no_grad;
        std::vector<std::string> names;
        for (const auto& [name, parameter] : model->parameters()) {
          check_cancelled();
          if (!std::isfinite(parameter.sum(at::kDouble).item<double>())) names.push_back(name);
        }
        return [names](Napi::Env env) -> Napi::Value {
          Napi::Array out = Napi::Array::New(env, names.size());
          for (size_t i = 0; i < names.size(); ++i) out.Set(i, names[i]);
          return out;
        };
      });
    });
  }
  Napi::Value lora_parameters(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return to_js(info.Env(), decoder("loraParameters")->lora_parameters()); });
  }

  // Runs `change` on the decoder in a compute-thread job (forward jobs read what it changes) → Promise<void>.
  template <typename Change>
  Napi::Value mutate(const Napi::CallbackInfo& info, const char* name, const Napi::Value& cancel, Change change) {
    return run_async(info.Env(), cancel, [model = decoder(name), change]() { change(*model); });
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
          SafetensorsFiles opened = open_safetensors(files);
          load_parameters(model.lora_parameters(), opened, {kPeftHeadBase});
          check_saved_head_base(model, opened);
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

// Refuses a config that needs more than twice the tensors the checkpoint holds (a near miss is left to
// check_parameters, which names each missing tensor).
void check_tensor_count(int64_t needed, int64_t layers, const SafetensorsFiles& files, const std::set<std::string>& ignored) {
  int64_t stored = 0;
  for (const auto& file : files) {
    for (const auto& entry : file->entries()) stored += ignored.count(entry.name) ? 0 : 1;
  }
  if (needed > 2 * stored) {
    invalid_argument("config.json describes " + std::to_string(needed) + " weight tensors (num_hidden_layers = " + std::to_string(layers) +
                     "), but the checkpoint holds " + std::to_string(stored));
  }
}

// loadModel(config, files, {dtype, device}, cancel?) → Promise<NativeModel>
Napi::Value load_model(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    DecoderConfig config = parse_config(info[0]);
    std::vector<std::string> files = arg_strings(info[1], "files");
    if (files.empty()) invalid_argument("files must name at least one safetensors file");
    if (!info[2].IsObject()) invalid_argument("options must be an object");
    const Placement placement = parse_placement(info[2].As<Napi::Object>());
    return run_async(info.Env(), info[3], [config, files, placement]() {
      // Checkpoints of tied models sometimes store the LM head as well; it is the embedding, so skip it.
      std::set<std::string> ignored;
      if (config.tie_word_embeddings) ignored.insert("lm_head.weight");
      // The headers first, before any model is allocated: a config asking for far more tensors than the files hold
      // (num_hidden_layers: 100000) fails on the count, anything else against the parameters' names and shapes on
      // the meta device (no memory).
      const SafetensorsFiles checkpoint = open_safetensors(files);  // each file mapped and its header parsed once
      check_tensor_count(Decoder::parameter_count(config), config.num_layers, checkpoint, ignored);
      check_parameters(Decoder(config, placement.dtype, at::Device(at::kMeta)).parameters(), checkpoint, ignored);
      auto decoder = std::make_shared<Decoder>(config, placement.dtype, placement.device, placement.master_weights);
      load_parameters(decoder->parameters(), checkpoint, ignored);
      return ModelHandle::wrapping(decoder);
    });
  });
}

bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
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
    const Placement placement = parse_placement(options);
    const double std = opt_number(options, "initializerRange", 0.02);
    if (!(std > 0) || !std::isfinite(std)) invalid_argument("initializerRange must be a positive number");
    const int64_t seed = opt_int(options, "seed", 0);
    if (seed < 0) invalid_argument("seed must be a non-negative integer");
    const int64_t padding_idx = opt_int(options, "paddingIdx", -1);                        // -1: none
    if (padding_idx < -1) invalid_argument("paddingIdx must be -1 (none) or a token id");  // one past the vocabulary zeroes nothing
    return run_async(info.Env(), info[2], [config, placement, std, seed, padding_idx]() {
      at::NoGradGuard no_grad;
      auto decoder = std::make_shared<Decoder>(config, placement.dtype, placement.device, placement.master_weights);
      at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
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
      return ModelHandle::wrapping(decoder);
    });
  });
}

}  // namespace

void register_model(Napi::Env env, Napi::Object exports) {
  Napi::Function model_class = ModelHandle::define_class(env);
  addon_data(env).model_class = Napi::Persistent(model_class);
  exports.Set("NativeModel", model_class);
  exports.Set("loadModel", Napi::Function::New(env, load_model, "loadModel"));
  exports.Set("initModel", Napi::Function::New(env, init_model, "initModel"));
}

}  // namespace prefix_rl
