// readSafetensors / writeSafetensors: safetensors files to and from named tensors, on the compute thread.
#include <map>

#include "addon.h"
#include "async.h"
#include "common.h"
#include "model/safetensors.h"
#include "tensor.h"

namespace prefix_rl {

namespace {

// readSafetensors(path, cancel?) → Promise<{tensors: {name: NativeTensor}, metadata: {key: string}}>. The tensors
// are CPU views over the mapped file.
Napi::Value read_safetensors(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::string path = arg_string(info[0], "path");
    return run_async(info.Env(), info[1], [path]() -> Completion {
      std::shared_ptr<SafetensorsFile> file = SafetensorsFile::open(path);
      NamedTensors tensors;
      for (const auto& entry : file->entries()) tensors.emplace_back(entry.name, file->tensor(entry));
      return [tensors, metadata = file->metadata()](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        Napi::Object meta = Napi::Object::New(env);
        // Defined, as the tensor names are (async.h): "__proto__" or a NUL in a key stays as written.
        for (const auto& [key, value] : metadata) {
          meta.DefineProperty(Napi::PropertyDescriptor::Value(Napi::String::New(env, key), Napi::String::New(env, value), napi_default_jsproperty));
        }
        out.Set("tensors", to_js(env, tensors));
        out.Set("metadata", meta);
        return out;
      };
    });
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
    return run_async(info.Env(), info[3], [path, tensors, metadata]() { write_safetensors(path, tensors, metadata); });
  });
}

}  // namespace

void register_safetensors(Napi::Env env, Napi::Object exports) {
  exports.Set("readSafetensors", Napi::Function::New(env, read_safetensors, "readSafetensors"));
  exports.Set("writeSafetensors", Napi::Function::New(env, write_safetensors_js, "writeSafetensors"));
}

}  // namespace prefix_rl
