#include "ops.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <functional>
#include <unordered_map>

#include "addon.h"
#include "async.h"
#include "common.h"
#include "ops/skinny_linear.h"
#include "tensor.h"

namespace prefix_rl {

// ---- OpArgs ----

void OpArgs::bad(size_t i, const char* expected) const { invalid_argument(op_ + ": argument " + std::to_string(i) + " must be " + expected); }

const at::Tensor& OpArgs::tensor(size_t i) const {
  if (!is_tensor(i)) bad(i, "a Tensor");
  return std::get<at::Tensor>(values_[i]);
}

double OpArgs::number(size_t i) const {
  if (i >= values_.size() || !std::holds_alternative<double>(values_[i])) bad(i, "a number");
  return std::get<double>(values_[i]);
}

int64_t OpArgs::integer(size_t i) const {
  double value = number(i);
  if (value != static_cast<double>(static_cast<int64_t>(value))) bad(i, "an integer");
  return static_cast<int64_t>(value);
}

bool OpArgs::boolean_or(size_t i, bool fallback) const {
  if (!has(i)) return fallback;
  if (!std::holds_alternative<bool>(values_[i])) bad(i, "a boolean");
  return std::get<bool>(values_[i]);
}

const std::string& OpArgs::string(size_t i) const {
  if (i >= values_.size() || !std::holds_alternative<std::string>(values_[i])) bad(i, "a string");
  return std::get<std::string>(values_[i]);
}

std::vector<int64_t> OpArgs::ints(size_t i) const {
  if (i < values_.size() && std::holds_alternative<double>(values_[i])) return {integer(i)};
  if (i >= values_.size() || !std::holds_alternative<std::vector<int64_t>>(values_[i])) bad(i, "an array of integers");
  return std::get<std::vector<int64_t>>(values_[i]);
}

const std::vector<at::Tensor>& OpArgs::tensors(size_t i) const {
  if (i >= values_.size() || !std::holds_alternative<std::vector<at::Tensor>>(values_[i])) bad(i, "an array of Tensors");
  return std::get<std::vector<at::Tensor>>(values_[i]);
}

// ---- the table ----

using OpFn = std::function<std::vector<at::Tensor>(const OpArgs&)>;
using One = std::vector<at::Tensor>;

static at::TensorOptions factory_options(const OpArgs& a, size_t dtype_at, at::ScalarType fallback = at::kFloat) {
  at::ScalarType dtype = a.has(dtype_at) ? parse_dtype(a.string(dtype_at)) : fallback;
  at::Device device = a.has(dtype_at + 1) ? parse_device(a.string(dtype_at + 1)) : at::Device(at::kCPU);
  return at::TensorOptions().dtype(dtype).device(device);
}

// A JS number as libtorch's type promotion wants it: an integral value as an integer scalar, so that an int64 tensor
// plus 1 stays int64 (exact) as in PyTorch, instead of promoting to the default float dtype.
static at::Scalar js_scalar(double value) {
  constexpr double limit = 9223372036854775808.0;  // 2^63
  if (std::isfinite(value) && std::floor(value) == value && value >= -limit && value < limit) return at::Scalar(static_cast<int64_t>(value));
  return at::Scalar(value);
}

// Binary ops take a Tensor or a number as their second operand.
template <typename TensorFn, typename ScalarFn>
static OpFn binary(TensorFn with_tensor, ScalarFn with_scalar) {
  return [=](const OpArgs& a) -> One {
    if (a.is_tensor(1)) return {with_tensor(a.tensor(0), a.tensor(1))};
    return {with_scalar(a.tensor(0), js_scalar(a.number(1)))};
  };
}

template <typename Fn>
static OpFn unary(Fn fn) {
  return [=](const OpArgs& a) -> One { return {fn(a.tensor(0))}; };
}

// Reductions: (x, dims?, keepdim?) with no dims meaning all.
template <typename Fn>
static OpFn reduction(Fn fn) {
  return [=](const OpArgs& a) -> One {
    if (!a.has(1)) return {fn(a.tensor(0), at::OptionalIntArrayRef(std::nullopt), false)};
    std::vector<int64_t> dims = a.ints(1);
    return {fn(a.tensor(0), at::OptionalIntArrayRef(at::IntArrayRef(dims)), a.boolean_or(2, false))};
  };
}

static at::Tensor seeded_random(const OpArgs& a, bool normal) {
  // Sampled on a CPU generator and then moved, so a seed gives the same values on every device.
  at::TensorOptions options = factory_options(a, 2);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(a.integer(1)));
  at::Tensor cpu = normal ? at::randn(a.ints(0), generator, options.device(at::kCPU).dtype(at::kDouble))
                          : at::rand(a.ints(0), generator, options.device(at::kCPU).dtype(at::kDouble));
  return cpu.to(options.device(), options.dtype().toScalarType());
}

static const std::unordered_map<std::string, OpFn>& op_table() {
  static const std::unordered_map<std::string, OpFn> table = {
      // elementwise
      {"add", binary([](auto& x, auto& y) { return x + y; }, [](auto& x, auto s) { return x + s; })},
      {"sub", binary([](auto& x, auto& y) { return x - y; }, [](auto& x, auto s) { return x - s; })},
      {"mul", binary([](auto& x, auto& y) { return x * y; }, [](auto& x, auto s) { return x * s; })},
      {"div", binary([](auto& x, auto& y) { return x / y; }, [](auto& x, auto s) { return x / s; })},
      {"pow", binary([](auto& x, auto& y) { return at::pow(x, y); }, [](auto& x, auto s) { return at::pow(x, s); })},
      {"maximum", binary([](auto& x, auto& y) { return at::maximum(x, y); }, [](auto& x, auto s) { return at::clamp_min(x, s); })},
      {"minimum", binary([](auto& x, auto& y) { return at::minimum(x, y); }, [](auto& x, auto s) { return at::clamp_max(x, s); })},
      {"eq", binary([](auto& x, auto& y) { return at::eq(x, y); }, [](auto& x, auto s) { return at::eq(x, s); })},
      {"lt", binary([](auto& x, auto& y) { return at::lt(x, y); }, [](auto& x, auto s) { return at::lt(x, s); })},
      {"gt", binary([](auto& x, auto& y) { return at::gt(x, y); }, [](auto& x, auto s) { return at::gt(x, s); })},
      {"where", [](const OpArgs& a) -> One { return {at::where(a.tensor(0), a.tensor(1), a.tensor(2))}; }},
      {"neg", unary([](auto& x) { return at::neg(x); })},
      {"exp", unary([](auto& x) { return at::exp(x); })},
      {"log", unary([](auto& x) { return at::log(x); })},
      {"sqrt", unary([](auto& x) { return at::sqrt(x); })},
      {"abs", unary([](auto& x) { return at::abs(x); })},
      {"sigmoid", unary([](auto& x) { return at::sigmoid(x); })},
      {"logsigmoid", unary([](auto& x) { return at::log_sigmoid(x); })},
      {"tanh", unary([](auto& x) { return at::tanh(x); })},
      {"relu", unary([](auto& x) { return at::relu(x); })},
      {"isnan", unary([](auto& x) { return at::isnan(x); })},
      {"clone", unary([](auto& x) { return x.clone(); })},
      {"detach", unary([](auto& x) { return x.detach(); })},
      {"contiguous", unary([](auto& x) { return x.contiguous(); })},
      // reductions
      {"sum", reduction([](auto& x, auto dims, bool keep) { return at::sum(x, dims, keep); })},
      {"mean", reduction([](auto& x, auto dims, bool keep) { return at::mean(x, dims, keep); })},
      {"max", [](const OpArgs& a) -> One {
         if (!a.has(1)) return {at::max(a.tensor(0))};
         auto [values, indices] = at::max(a.tensor(0), a.integer(1), a.boolean_or(2, false));
         return {values, indices};
       }},
      {"argmax", [](const OpArgs& a) -> One { return {at::argmax(a.tensor(0), a.integer(1), a.boolean_or(2, false))}; }},
      {"logsumexp", [](const OpArgs& a) -> One { return {at::logsumexp(a.tensor(0), a.ints(1), a.boolean_or(2, false))}; }},
      {"softmax", [](const OpArgs& a) -> One { return {at::softmax(a.tensor(0), a.integer(1))}; }},
      {"logSoftmax", [](const OpArgs& a) -> One { return {at::log_softmax(a.tensor(0), a.integer(1))}; }},
      {"cumsum", [](const OpArgs& a) -> One { return {at::cumsum(a.tensor(0), a.integer(1))}; }},
      {"topk", [](const OpArgs& a) -> One {
         auto [values, indices] = at::topk(a.tensor(0), a.integer(1), a.integer_or(2, -1));
         return {values, indices};
       }},
      // linear algebra and indexing
      {"matmul", [](const OpArgs& a) -> One { return {at::matmul(a.tensor(0), a.tensor(1))}; }},
      {"linear", [](const OpArgs& a) -> One { return {dense(a.tensor(0), a.tensor(1), a.has(2) ? a.tensor(2) : at::Tensor())}; }},
      {"gather", [](const OpArgs& a) -> One { return {at::gather(a.tensor(0), a.integer(1), a.tensor(2))}; }},
      {"indexSelect", [](const OpArgs& a) -> One { return {at::index_select(a.tensor(0), a.integer(1), a.tensor(2))}; }},
      {"select", [](const OpArgs& a) -> One { return {a.tensor(0).select(a.integer(1), a.integer(2))}; }},
      {"slice", [](const OpArgs& a) -> One {
         return {a.tensor(0).slice(a.integer(1), a.integer_or(2, 0), a.integer_or(3, INT64_MAX), a.integer_or(4, 1))};
       }},
      // shape
      {"reshape", [](const OpArgs& a) -> One { return {a.tensor(0).reshape(a.ints(1))}; }},
      {"transpose", [](const OpArgs& a) -> One { return {a.tensor(0).transpose(a.integer(1), a.integer(2))}; }},
      {"permute", [](const OpArgs& a) -> One { return {a.tensor(0).permute(a.ints(1))}; }},
      {"squeeze", [](const OpArgs& a) -> One { return {a.has(1) ? a.tensor(0).squeeze(a.integer(1)) : a.tensor(0).squeeze()}; }},
      {"unsqueeze", [](const OpArgs& a) -> One { return {a.tensor(0).unsqueeze(a.integer(1))}; }},
      {"cat", [](const OpArgs& a) -> One { return {at::cat(a.tensors(0), a.integer_or(1, 0))}; }},
      {"stack", [](const OpArgs& a) -> One { return {at::stack(a.tensors(0), a.integer_or(1, 0))}; }},
      // factories: (shape, dtype?, device?)
      {"zeros", [](const OpArgs& a) -> One { return {at::zeros(a.ints(0), factory_options(a, 1))}; }},
      {"ones", [](const OpArgs& a) -> One { return {at::ones(a.ints(0), factory_options(a, 1))}; }},
      {"full", [](const OpArgs& a) -> One { return {at::full(a.ints(0), a.number(1), factory_options(a, 2))}; }},
      {"arange", [](const OpArgs& a) -> One {
         return {at::arange(a.number(0), a.number(1), a.number_or(2, 1.0), factory_options(a, 3, at::kLong))};
       }},
      {"rand", [](const OpArgs& a) -> One { return {seeded_random(a, false)}; }},
      {"randn", [](const OpArgs& a) -> One { return {seeded_random(a, true)}; }},
  };
  return table;
}

std::vector<at::Tensor> run_op(const std::string& name, const OpArgs& args) {
  const auto& table = op_table();
  auto it = table.find(name);
  if (it == table.end()) invalid_argument("unknown op '" + name + "'");
  return it->second(args);
}

std::vector<std::string> op_names() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : op_table()) names.push_back(name);
  return names;
}

// ---- JS bindings ----

static OpValue parse_op_value(const Napi::Value& value, size_t i) {
  if (value.IsUndefined() || value.IsNull()) return std::monostate{};
  if (value.IsNumber()) return value.As<Napi::Number>().DoubleValue();
  if (value.IsBoolean()) return value.As<Napi::Boolean>().Value();
  if (value.IsString()) return value.As<Napi::String>().Utf8Value();
  if (TensorHandle::is_tensor(value)) return TensorHandle::unwrap(value, "tensor argument");
  if (value.IsArray()) {
    Napi::Array array = value.As<Napi::Array>();
    if (array.Length() > 0 && TensorHandle::is_tensor(array.Get(0u))) {
      std::vector<at::Tensor> tensors;
      for (uint32_t j = 0; j < array.Length(); ++j) tensors.push_back(TensorHandle::unwrap(array.Get(j), "tensor list element"));
      return tensors;
    }
    return arg_shape(value, "integer list argument");
  }
  invalid_argument("op argument " + std::to_string(i) + " has an unsupported type");
}

static OpArgs parse_op_args(const std::string& name, const Napi::Value& list) {
  if (!list.IsArray()) invalid_argument(name + ": arguments must be an array");
  Napi::Array array = list.As<Napi::Array>();
  std::vector<OpValue> values;
  for (uint32_t i = 0; i < array.Length(); ++i) values.push_back(parse_op_value(array.Get(i), i));
  return OpArgs(name, std::move(values));
}

// op(name, args): runs on the JS thread; for small tensors and views.
static Napi::Value op_sync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::string name = arg_string(info[0], "op name");
    return to_js(info.Env(), run_op(name, parse_op_args(name, info[1])));
  });
}

// opAsync(name, args, cancelToken?): runs on the compute thread; returns a Promise of the result tensors.
static Napi::Value op_async(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::string name = arg_string(info[0], "op name");
    OpArgs args = parse_op_args(name, info[1]);
    return run_async(info.Env(), info[2], [name, args]() { return run_op(name, args); });
  });
}

static Napi::Value list_ops(const Napi::CallbackInfo& info) {
  std::vector<std::string> names = op_names();
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) out.Set(i, Napi::String::New(info.Env(), names[i]));
  return out;
}

void register_tensor_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("op", Napi::Function::New(env, op_sync, "op"));
  exports.Set("opAsync", Napi::Function::New(env, op_async, "opAsync"));
  exports.Set("listOps", Napi::Function::New(env, list_ops, "listOps"));
}

}  // namespace prefix_rl
