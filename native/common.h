// Shared helpers of the addon: error codes and conversion to JS, argument parsing, dtype/device names.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "error.h"

namespace prefix_rl {

const char* error_code_name(ErrorCode code);

// Converts the in-flight exception (c10::Error, prefix_rl::Error, Napi::Error, std::exception) into a JS Error.
// c10 messages lose their C++ backtrace.
Napi::Error to_js_error(Napi::Env env, std::exception_ptr error);

// Runs `body` and turns any C++ exception into a thrown JS Error, so no exception ever aborts the process.
template <typename Body>
Napi::Value guarded(const Napi::CallbackInfo& info, Body&& body) {
  try {
    return body();
  } catch (...) {
    throw to_js_error(info.Env(), std::current_exception());
  }
}

at::ScalarType parse_dtype(const std::string& name);
std::string dtype_name(at::ScalarType dtype);
// Throws when `tensor` and `other` live on different devices, naming both: the fused kernels take raw pointers, so
// a CPU pointer must never reach a GPU kernel (or the reverse).
void check_same_device(const at::Tensor& tensor, const std::string& name, const at::Tensor& other, const std::string& other_name);

// Parses "cpu", "cuda", "cuda:N"; throws CudaUnavailable when CUDA is asked for but absent. "cuda" is
// cuda:<default index> (0 unless set_default_cuda_index: a data-parallel rank's LOCAL_RANK).
at::Device parse_device(const std::string& name);
void set_default_cuda_index(int index);
std::string device_name(const at::Device& device);

// Argument readers that name the argument in their error.
std::string arg_string(const Napi::Value& value, const char* name);
double arg_number(const Napi::Value& value, const char* name);
int64_t arg_int(const Napi::Value& value, const char* name);
bool arg_bool(const Napi::Value& value, const char* name);
std::vector<int64_t> arg_shape(const Napi::Value& value, const char* name);
std::vector<std::string> arg_strings(const Napi::Value& value, const char* name);

// Options objects: `opt_*` return the fallback when the key is absent or undefined.
double opt_number(const Napi::Object& options, const char* key, double fallback);
int64_t opt_int(const Napi::Object& options, const char* key, int64_t fallback);
bool opt_bool(const Napi::Object& options, const char* key, bool fallback);
std::string opt_string(const Napi::Object& options, const char* key, const std::string& fallback);

// Cooperative cancellation: long native work calls check_cancelled() between chunks of work.
// The flag is set per job by the compute thread (see compute.h).
struct CancelFlag;
void set_current_cancel_flag(const CancelFlag* flag);
const CancelFlag* current_cancel_flag();
bool is_cancelled(const CancelFlag* flag);
void check_cancelled(const CancelFlag* flag);
inline void check_cancelled() { check_cancelled(current_cancel_flag()); }

}  // namespace prefix_rl
