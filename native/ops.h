// The generic tensor-op table: `op(name, args)` runs one ATen operation, synchronously on the JS thread or
// asynchronously on the compute thread. Arguments are parsed on the JS thread into OpArgs (which hold their own
// tensor references), so the operation itself never touches JS values.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <variant>
#include <vector>

namespace prefix_rl {

using OpValue = std::variant<std::monostate, at::Tensor, double, bool, std::string, std::vector<int64_t>, std::vector<at::Tensor>>;

class OpArgs {
 public:
  OpArgs(std::string op, std::vector<OpValue> values) : op_(std::move(op)), values_(std::move(values)) {}
  size_t size() const { return values_.size(); }
  bool has(size_t i) const { return i < values_.size() && !std::holds_alternative<std::monostate>(values_[i]); }
  bool is_tensor(size_t i) const { return i < values_.size() && std::holds_alternative<at::Tensor>(values_[i]); }
  const at::Tensor& tensor(size_t i) const;
  double number(size_t i) const;
  double number_or(size_t i, double fallback) const { return has(i) ? number(i) : fallback; }
  int64_t integer(size_t i) const;
  int64_t integer_or(size_t i, int64_t fallback) const { return has(i) ? integer(i) : fallback; }
  bool boolean_or(size_t i, bool fallback) const;
  const std::string& string(size_t i) const;
  std::vector<int64_t> ints(size_t i) const;
  const std::vector<at::Tensor>& tensors(size_t i) const;

 private:
  [[noreturn]] void bad(size_t i, const char* expected) const;
  std::string op_;
  std::vector<OpValue> values_;
};

// Runs op `name`; every op returns one or more tensors.
std::vector<at::Tensor> run_op(const std::string& name, const OpArgs& args);
std::vector<std::string> op_names();

}  // namespace prefix_rl
