// Named inputs and outputs of the objectives: a JS object of tensors, numbers, strings and booleans in, a JS object
// of tensors and numbers out. Parsed on the JS thread (tensor references are held), used on the compute thread.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <map>
#include <string>
#include <variant>

namespace prefix_rl {

class ObjectiveInputs {
 public:
  using Value = std::variant<at::Tensor, double, bool, std::string>;
  static ObjectiveInputs parse(const std::string& objective, const Napi::Value& object);

  bool has(const std::string& key) const { return values_.count(key) > 0; }
  const at::Tensor& tensor(const std::string& key) const;
  at::Tensor tensor_or_undefined(const std::string& key) const { return has(key) ? tensor(key) : at::Tensor(); }
  double number(const std::string& key, double fallback) const;
  double number(const std::string& key) const;
  int64_t integer(const std::string& key, int64_t fallback) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::string string(const std::string& key, const std::string& fallback) const;
  // Throws for keys the objective does not know (a typo must not silently fall back to a default).
  void expect_only(std::initializer_list<const char*> keys) const;

 private:
  [[noreturn]] void bad(const std::string& key, const char* expected) const;
  void check_one_device() const;
  std::string objective_;
  std::map<std::string, Value> values_;
};

using ObjectiveOutputs = std::map<std::string, std::variant<at::Tensor, double>>;
Napi::Object outputs_to_js(Napi::Env env, const ObjectiveOutputs& outputs);

}  // namespace prefix_rl
