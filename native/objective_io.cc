#include "objective_io.h"

#include <cmath>
#include <optional>

#include "common.h"
#include "tensor.h"

namespace prefix_rl {

ObjectiveInputs ObjectiveInputs::parse(const std::string& objective, const Napi::Value& object) {
  if (!object.IsObject()) invalid_argument(objective + ": inputs must be an object");
  ObjectiveInputs inputs;
  inputs.objective_ = objective;
  Napi::Object obj = object.As<Napi::Object>();
  Napi::Array keys = obj.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value value = obj.Get(key);
    if (value.IsUndefined() || value.IsNull()) continue;
    if (value.IsNumber())
      inputs.values_[key] = value.As<Napi::Number>().DoubleValue();
    else if (value.IsBoolean())
      inputs.values_[key] = value.As<Napi::Boolean>().Value();
    else if (value.IsString())
      inputs.values_[key] = value.As<Napi::String>().Utf8Value();
    else if (TensorHandle::is_tensor(value))
      inputs.values_[key] = TensorHandle::unwrap(value, key.c_str());
    else
      invalid_argument(objective + ": input '" + key + "' must be a Tensor, number, boolean or string");
  }
  inputs.check_one_device();
  return inputs;
}

// The fused kernels read raw pointers of every tensor input, so all of them must share one device; the error lists
// each tensor with its device.
void ObjectiveInputs::check_one_device() const {
  std::optional<at::Device> first;
  bool mixed = false;
  for (const auto& [key, value] : values_) {
    if (!std::holds_alternative<at::Tensor>(value)) continue;
    const at::Device device = std::get<at::Tensor>(value).device();
    mixed = mixed || (first && *first != device);
    if (!first) first = device;
  }
  if (!mixed) return;
  std::string listing;
  for (const auto& [key, value] : values_) {
    if (!std::holds_alternative<at::Tensor>(value)) continue;
    listing += std::string(listing.empty() ? "" : ", ") + key + " on " + device_name(std::get<at::Tensor>(value).device());
  }
  invalid_argument(objective_ + ": tensor inputs must share one device, got " + listing);
}

void ObjectiveInputs::bad(const std::string& key, const char* expected) const { invalid_argument(objective_ + ": input '" + key + "' " + expected); }

const at::Tensor& ObjectiveInputs::tensor(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) bad(key, "is required");
  if (!std::holds_alternative<at::Tensor>(it->second)) bad(key, "must be a Tensor");
  return std::get<at::Tensor>(it->second);
}

double ObjectiveInputs::number(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) bad(key, "is required");
  if (!std::holds_alternative<double>(it->second)) bad(key, "must be a number");
  // Every scalar setting (β, margins, clip ratios, temperatures) must be finite: NaN would flow into every output.
  if (!std::isfinite(std::get<double>(it->second))) bad(key, "must be a finite number");
  return std::get<double>(it->second);
}

double ObjectiveInputs::number(const std::string& key, double fallback) const { return has(key) ? number(key) : fallback; }

int64_t ObjectiveInputs::integer(const std::string& key, int64_t fallback) const {
  if (!has(key)) return fallback;
  double value = number(key);
  if (value != static_cast<double>(static_cast<int64_t>(value))) bad(key, "must be an integer");
  return static_cast<int64_t>(value);
}

bool ObjectiveInputs::boolean(const std::string& key, bool fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  if (!std::holds_alternative<bool>(it->second)) bad(key, "must be a boolean");
  return std::get<bool>(it->second);
}

std::string ObjectiveInputs::string(const std::string& key, const std::string& fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  if (!std::holds_alternative<std::string>(it->second)) bad(key, "must be a string");
  return std::get<std::string>(it->second);
}

void ObjectiveInputs::expect_only(std::initializer_list<const char*> keys) const {
  for (const auto& [key, value] : values_) {
    bool known = false;
    for (const char* k : keys) known = known || key == k;
    if (!known) {
      std::string list;
      for (const char* k : keys) list += std::string(list.empty() ? "" : ", ") + k;
      invalid_argument(objective_ + ": unknown input '" + key + "' (known: " + list + ")");
    }
  }
}

Napi::Object outputs_to_js(Napi::Env env, const ObjectiveOutputs& outputs) {
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [key, value] : outputs) {
    if (std::holds_alternative<double>(value))
      out.Set(key, Napi::Number::New(env, std::get<double>(value)));
    else
      out.Set(key, TensorHandle::wrap(env, std::get<at::Tensor>(value)));
  }
  return out;
}

}  // namespace prefix_rl
