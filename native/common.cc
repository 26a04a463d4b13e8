#include "common.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cmath>

#include "compute.h"

namespace prefix_rl {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "ERR_INVALID_ARG";
    case ErrorCode::Torch: return "ERR_TORCH";
    case ErrorCode::Disposed: return "ERR_TENSOR_DISPOSED";
    case ErrorCode::CudaUnavailable: return "ERR_CUDA_UNAVAILABLE";
    case ErrorCode::Aborted: return "ABORT_ERR";
    case ErrorCode::Distributed: return "ERR_DISTRIBUTED";
    case ErrorCode::Native: return "ERR_NATIVE";
  }
  return "ERR_NATIVE";
}

static Napi::Error make_error(Napi::Env env, ErrorCode code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Value().Set("code", Napi::String::New(env, error_code_name(code)));
  if (code == ErrorCode::Aborted) error.Value().Set("name", Napi::String::New(env, "AbortError"));
  return error;
}

Napi::Error to_js_error(Napi::Env env, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Napi::Error& e) {
    return e;
  } catch (const Error& e) {
    return make_error(env, e.code(), e.what());
  } catch (const c10::Error& e) {
    // c10 errors from a CUDA call on a machine without CUDA get their own code.
    std::string message = e.what_without_backtrace();
    bool cuda_missing = message.find("CUDA driver") != std::string::npos || message.find("no CUDA GPUs") != std::string::npos ||
                        message.find("compiled with CUDA") != std::string::npos;
    return make_error(env, cuda_missing ? ErrorCode::CudaUnavailable : ErrorCode::Torch, message);
  } catch (const std::exception& e) {
    return make_error(env, ErrorCode::Native, e.what());
  } catch (...) {
    return make_error(env, ErrorCode::Native, "unknown native exception");
  }
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float64") return at::kDouble;
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "int32") return at::kInt;
  if (name == "int64") return at::kLong;
  if (name == "bool") return at::kBool;
  if (name == "uint8") return at::kByte;
  invalid_argument("unknown dtype '" + name + "' (expected float32, float64, float16, bfloat16, int32, int64, bool, uint8)");
}

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kBool: return "bool";
    case at::kByte: return "uint8";
    default: return c10::toString(dtype);
  }
}

static std::atomic<int> default_cuda_index{0};

void set_default_cuda_index(int index) { default_cuda_index.store(index); }

at::Device parse_device(const std::string& name) {
  if (name == "cpu") return at::Device(at::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!at::hasCUDA()) {
      throw Error(ErrorCode::CudaUnavailable,
                  "device '" + name + "' requested but CUDA is not available (this libtorch is CPU-only or no GPU is visible)");
    }
    int64_t index = default_cuda_index.load();
    if (name.size() > 5) {
      try {
        size_t used = 0;
        index = std::stoll(name.substr(5), &used);
        if (used != name.size() - 5) throw std::invalid_argument("trailing characters");
      } catch (const std::exception&) {
        invalid_argument("malformed device '" + name + "' (expected cpu, cuda or cuda:N)");
      }
    }
    const int64_t count = at::detail::getCUDAHooks().deviceCount();
    if (index < 0 || index >= count) {
      throw Error(ErrorCode::CudaUnavailable, "device '" + name + "' does not exist: " + std::to_string(count) + " CUDA device(s) visible");
    }
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  // Tensors with shapes and no data: shape checks, and device-discipline tests on machines without a GPU.
  if (name == "meta") return at::Device(at::kMeta);
  invalid_argument("unknown device '" + name + "' (expected cpu, cuda, cuda:N or meta)");
}

std::string device_name(const at::Device& device) {
  if (device.is_cpu()) return "cpu";
  return device.str();
}

void check_same_device(const at::Tensor& tensor, const std::string& name, const at::Tensor& other, const std::string& other_name) {
  if (!tensor.defined() || !other.defined() || tensor.device() == other.device()) return;
  invalid_argument(name + " is on " + device_name(tensor.device()) + " but " + other_name + " are on " + device_name(other.device()) +
                   " (move it with .to('" + device_name(other.device()) + "'))");
}

std::string arg_string(const Napi::Value& value, const char* name) {
  if (!value.IsString()) invalid_argument(std::string(name) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

double arg_number(const Napi::Value& value, const char* name) {
  if (!value.IsNumber()) invalid_argument(std::string(name) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

int64_t arg_int(const Napi::Value& value, const char* name) {
  double number = arg_number(value, name);
  // A JS number holds integers exactly up to 2^53; past it (or NaN, a fraction) the cast would be undefined or wrong.
  constexpr double kMaxSafe = 9007199254740991.0;
  if (!(std::fabs(number) <= kMaxSafe) || number != std::trunc(number)) {
    invalid_argument(std::string(name) + " must be an integer of at most 2^53 − 1 in magnitude, got " + std::to_string(number));
  }
  return static_cast<int64_t>(number);
}

bool arg_bool(const Napi::Value& value, const char* name) {
  if (!value.IsBoolean()) invalid_argument(std::string(name) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

std::vector<std::string> arg_strings(const Napi::Value& value, const char* name) {
  if (!value.IsArray()) invalid_argument(std::string(name) + " must be an array of strings");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < array.Length(); ++i) out.push_back(arg_string(array.Get(i), name));
  return out;
}

std::vector<int64_t> arg_shape(const Napi::Value& value, const char* name) {
  if (!value.IsArray()) invalid_argument(std::string(name) + " must be an array of non-negative integers");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> shape(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    shape[i] = arg_int(array.Get(i), name);
    if (shape[i] < 0) invalid_argument(std::string(name) + " must not contain negative sizes");
  }
  return shape;
}

static bool has_option(const Napi::Object& options, const char* key) { return options.Has(key) && !options.Get(key).IsUndefined(); }

double opt_number(const Napi::Object& options, const char* key, double fallback) {
  return has_option(options, key) ? arg_number(options.Get(key), key) : fallback;
}

int64_t opt_int(const Napi::Object& options, const char* key, int64_t fallback) {
  return has_option(options, key) ? arg_int(options.Get(key), key) : fallback;
}

bool opt_bool(const Napi::Object& options, const char* key, bool fallback) {
  return has_option(options, key) ? arg_bool(options.Get(key), key) : fallback;
}

std::string opt_string(const Napi::Object& options, const char* key, const std::string& fallback) {
  return has_option(options, key) ? arg_string(options.Get(key), key) : fallback;
}

static thread_local const CancelFlag* tls_cancel_flag = nullptr;

void set_current_cancel_flag(const CancelFlag* flag) { tls_cancel_flag = flag; }
const CancelFlag* current_cancel_flag() { return tls_cancel_flag; }
bool is_cancelled(const CancelFlag* flag) { return flag != nullptr && flag->cancelled.load(std::memory_order_relaxed); }
void check_cancelled(const CancelFlag* flag) {
  if (is_cancelled(flag)) throw Error(ErrorCode::Aborted, "the operation was aborted");
}

}  // namespace prefix_rl
