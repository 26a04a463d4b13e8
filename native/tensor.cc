#include "tensor.h"

#include <cstring>

#include "addon.h"
#include "async.h"
#include "common.h"

namespace prefix_rl {

std::atomic<int64_t> TensorHandle::live_{0};

Napi::Function TensorHandle::define_class(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {
                         InstanceAccessor<&TensorHandle::shape>("shape"),
                         InstanceAccessor<&TensorHandle::dtype>("dtype"),
                         InstanceAccessor<&TensorHandle::device>("device"),
                         InstanceAccessor<&TensorHandle::numel>("numel"),
                         InstanceAccessor<&TensorHandle::is_disposed>("isDisposed"),
                         InstanceAccessor<&TensorHandle::requires_grad>("requiresGrad"),
                         InstanceMethod<&TensorHandle::set_requires_grad>("setRequiresGrad"),
                         InstanceAccessor<&TensorHandle::grad>("grad"),
                         InstanceMethod<&TensorHandle::zero_grad>("zeroGrad"),
                         InstanceMethod<&TensorHandle::backward>("backward"),
                         InstanceMethod<&TensorHandle::to>("to"),
                         InstanceMethod<&TensorHandle::to_typed_array>("toTypedArray"),
                         InstanceMethod<&TensorHandle::item>("item"),
                         InstanceMethod<&TensorHandle::dispose>("dispose"),
                     });
}

Napi::Object TensorHandle::wrap(Napi::Env env, at::Tensor tensor) {
  at::Tensor* boxed = new at::Tensor(std::move(tensor));
  Napi::External<at::Tensor> external = Napi::External<at::Tensor>::New(env, boxed);
  try {
    return addon_data(env).tensor_class.New({external});
  } catch (...) {
    delete boxed;
    throw;
  }
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeTensor cannot be constructed directly; use the tensor factories");
  }
  at::Tensor* boxed = info[0].As<Napi::External<at::Tensor>>().Data();
  tensor_ = std::move(*boxed);
  delete boxed;
  live_.fetch_add(1);
}

TensorHandle::~TensorHandle() { release(); }

void TensorHandle::release() {
  if (tensor_.has_value()) {
    tensor_.reset();
    live_.fetch_sub(1);
  }
}

bool TensorHandle::is_tensor(const Napi::Value& value) {
  if (!value.IsObject()) return false;
  Napi::Env env = value.Env();
  return value.As<Napi::Object>().InstanceOf(addon_data(env).tensor_class.Value());
}

const at::Tensor& TensorHandle::unwrap(const Napi::Value& value, const char* name) {
  if (!is_tensor(value)) invalid_argument(std::string(name) + " must be a Tensor");
  return Unwrap(value.As<Napi::Object>())->tensor(name);
}

const at::Tensor& TensorHandle::tensor(const char* what) const {
  if (!tensor_.has_value()) {
    throw Error(ErrorCode::Disposed, std::string(what) + ": the tensor was disposed");
  }
  return *tensor_;
}

Napi::Value TensorHandle::shape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const auto sizes = tensor("shape").sizes();
    Napi::Array array = Napi::Array::New(info.Env(), sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) array.Set(i, Napi::Number::New(info.Env(), sizes[i]));
    return array;
  });
}

Napi::Value TensorHandle::dtype(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtype_name(tensor("dtype").scalar_type())); });
}

Napi::Value TensorHandle::device(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), device_name(tensor("device").device())); });
}

Napi::Value TensorHandle::numel(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(tensor("numel").numel())); });
}

Napi::Value TensorHandle::is_disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !tensor_.has_value()); }

Napi::Value TensorHandle::requires_grad(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), tensor("requiresGrad").requires_grad()); });
}

Napi::Value TensorHandle::set_requires_grad(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    tensor("setRequiresGrad").set_requires_grad(arg_bool(info[0], "requiresGrad"));
    return info.This();
  });
}

Napi::Value TensorHandle::grad(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const at::Tensor& grad = tensor("grad").grad();
    if (!grad.defined()) return info.Env().Null();
    return wrap(info.Env(), grad.detach());
  });
}

Napi::Value TensorHandle::zero_grad(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    at::Tensor& grad = tensor("zeroGrad").mutable_grad();
    if (grad.defined()) grad.zero_();
    return info.Env().Undefined();
  });
}

Napi::Value TensorHandle::backward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const at::Tensor& self = tensor("backward");
    if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) {
      self.backward(unwrap(info[0], "gradient"));
    } else {
      self.backward();
    }
    return info.Env().Undefined();
  });
}

Napi::Value TensorHandle::to(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const at::Tensor& self = tensor("to");
    at::Device device = self.device();
    at::ScalarType dtype = self.scalar_type();
    if (info.Length() > 0 && info[0].IsString()) device = parse_device(info[0].As<Napi::String>());
    if (info.Length() > 1 && info[1].IsString()) dtype = parse_dtype(info[1].As<Napi::String>());
    // Always a new tensor (copy=true), so disposing either one never affects the other.
    return wrap(info.Env(), self.to(device, dtype, /*non_blocking=*/false, /*copy=*/true));
  });
}

Napi::Value TensorHandle::to_typed_array(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return tensor_to_typed_array(info.Env(), tensor("toTypedArray")); });
}

Napi::Value TensorHandle::item(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const at::Tensor& self = tensor("item");
    if (self.numel() != 1) invalid_argument("item() needs a tensor with one element, this one has " + std::to_string(self.numel()));
    return Napi::Number::New(info.Env(), self.item<double>());
  });
}

Napi::Value TensorHandle::dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

// The typed array a tensor of this dtype reads as, over `buffer`.
static Napi::Value typed_array_over(Napi::Env env, Napi::ArrayBuffer buffer, size_t count, at::ScalarType type) {
  switch (type) {
    case at::kFloat: return Napi::Float32Array::New(env, count, buffer, 0);
    case at::kDouble: return Napi::Float64Array::New(env, count, buffer, 0);
    case at::kInt: return Napi::Int32Array::New(env, count, buffer, 0);
    case at::kLong: return Napi::BigInt64Array::New(env, count, buffer, 0);
    case at::kBool:
    case at::kByte: return Napi::Uint8Array::New(env, count, buffer, 0);
    default: invalid_argument("cannot read a " + dtype_name(type) + " tensor into a typed array");
  }
}

// A tensor as it is read: on the CPU, contiguous, bf16/fp16 widened to float32.
static at::Tensor readable(const at::Tensor& source) {
  at::Tensor tensor = source.detach().to(at::kCPU);
  if (tensor.scalar_type() == at::kBFloat16 || tensor.scalar_type() == at::kHalf) tensor = tensor.to(at::kFloat);
  return tensor.contiguous();
}

Napi::Value tensor_to_typed_array(Napi::Env env, const at::Tensor& source) {
  at::Tensor tensor = readable(source);
  const size_t count = static_cast<size_t>(tensor.numel());
  const size_t bytes = count * tensor.element_size();
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, bytes);
  if (bytes > 0) std::memcpy(buffer.Data(), tensor.data_ptr(), bytes);
  return typed_array_over(env, buffer, count, tensor.scalar_type());
}

// `copy` (a tensor of its own, made by the caller) as a typed array over its memory, which the ArrayBuffer then owns
// until it is collected: the JS thread copies nothing. Where the runtime allows no external buffers (Electron's V8
// sandbox), a copy after all.
static Napi::Value owning_typed_array(Napi::Env env, const at::Tensor& copy) {
  const size_t count = static_cast<size_t>(copy.numel());
  const size_t bytes = count * copy.element_size();
  if (bytes == 0) return tensor_to_typed_array(env, copy);
  auto* owner = new at::Tensor(copy);
  napi_value buffer;
  const napi_status status = napi_create_external_arraybuffer(
      env, copy.data_ptr(), bytes, [](napi_env, void*, void* hint) { delete static_cast<at::Tensor*>(hint); }, owner, &buffer);
  if (status != napi_ok) {
    delete owner;
    return tensor_to_typed_array(env, copy);
  }
  return typed_array_over(env, Napi::ArrayBuffer(env, buffer), count, copy.scalar_type());
}

static const char* typed_array_name(napi_typedarray_type type) {
  switch (type) {
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_int32_array: return "Int32Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint16_array: return "Uint16Array";
    default: return "an unsupported typed array";
  }
}

at::Tensor tensor_from_typed_array(const Napi::TypedArray& array, const std::vector<int64_t>& shape, at::ScalarType dtype) {
  int64_t numel = 1;
  for (int64_t size : shape) numel *= size;
  if (static_cast<int64_t>(array.ElementLength()) != numel) {
    invalid_argument("typed array has " + std::to_string(array.ElementLength()) + " elements but shape " + c10::str(at::IntArrayRef(shape)) +
                     " needs " + std::to_string(numel));
  }
  napi_typedarray_type type = array.TypedArrayType();
  // Which typed array carries each dtype. bf16/fp16 arrive as float32 values, or as raw 16-bit patterns.
  at::ScalarType source;
  switch (type) {
    case napi_float32_array: source = at::kFloat; break;
    case napi_float64_array: source = at::kDouble; break;
    case napi_int32_array: source = at::kInt; break;
    case napi_bigint64_array: source = at::kLong; break;
    case napi_uint8_array: source = (dtype == at::kBool) ? at::kBool : at::kByte; break;
    case napi_uint16_array: source = dtype; break;
    default: invalid_argument(std::string("unsupported typed array type: ") + typed_array_name(type));
  }
  bool half_from_bits = type == napi_uint16_array && (dtype == at::kBFloat16 || dtype == at::kHalf);
  bool half_from_float = source == at::kFloat && (dtype == at::kBFloat16 || dtype == at::kHalf);
  if (source != dtype && !half_from_float && !(source == at::kByte && dtype == at::kBool)) {
    invalid_argument(std::string("dtype ") + dtype_name(dtype) + " cannot be filled from a " + typed_array_name(type));
  }
  if (type == napi_uint16_array && !half_from_bits) {
    invalid_argument("a Uint16Array holds raw bfloat16/float16 bits; dtype " + dtype_name(dtype) + " was asked for");
  }
  if (dtype == at::kBool) {
    const uint8_t* bytes = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    for (int64_t i = 0; i < numel; ++i) {
      if (bytes[i] > 1) invalid_argument("bool tensors take 0/1 bytes, found " + std::to_string(bytes[i]) + " at index " + std::to_string(i));
    }
  }
  at::ScalarType storage = half_from_float ? at::kFloat : dtype;
  at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(storage));
  if (numel > 0) {
    const uint8_t* data = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    std::memcpy(tensor.data_ptr(), data, static_cast<size_t>(numel) * tensor.element_size());
  }
  return half_from_float ? tensor.to(dtype) : tensor;
}

std::vector<at::Tensor> arg_tensors(const Napi::Value& value, const char* name) {
  if (!value.IsArray()) invalid_argument(std::string(name) + " must be an array of tensors");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<at::Tensor> tensors;
  for (uint32_t i = 0; i < array.Length(); ++i) tensors.push_back(TensorHandle::unwrap(array.Get(i), name));
  return tensors;
}

// ---- functions over tensor data: fromTypedArray, readAsync, backwardAsync ----

static Napi::Value from_typed_array(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsTypedArray()) invalid_argument("data must be a typed array");
    std::vector<int64_t> shape = arg_shape(info[1], "shape");
    at::ScalarType dtype = parse_dtype(arg_string(info[2], "dtype"));
    at::Device device = info[3].IsString() ? parse_device(info[3].As<Napi::String>()) : at::Device(at::kCPU);
    at::Tensor tensor = tensor_from_typed_array(info[0].As<Napi::TypedArray>(), shape, dtype);
    return TensorHandle::wrap(info.Env(), device.is_cpu() ? tensor : tensor.to(device));
  });
}

// readAsync(tensor): copies to a typed array on the compute thread (the device sync, the widening and the copy
// itself), which the typed array then owns.
static Napi::Value read_async(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    at::Tensor tensor = TensorHandle::unwrap(info[0], "tensor");
    return run_async(info.Env(), info.Env().Undefined(), [tensor]() -> Completion {
      // A tensor of its own, never one that shares memory with a live tensor: what the caller reads stays as read.
      at::Tensor copy = readable(tensor);
      if (copy.storage().is_alias_of(tensor.storage())) copy = copy.clone();
      return [copy](Napi::Env env) { return owning_typed_array(env, copy); };
    });
  });
}

// backwardAsync(tensor, gradient?, cancel?): runs autograd's backward pass on the compute thread.
static Napi::Value backward_async(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    at::Tensor tensor = TensorHandle::unwrap(info[0], "tensor");
    at::Tensor gradient = TensorHandle::is_tensor(info[1]) ? TensorHandle::unwrap(info[1], "gradient") : at::Tensor();
    return run_async(info.Env(), info[2], [tensor, gradient]() { gradient.defined() ? tensor.backward(gradient) : tensor.backward(); });
  });
}

void register_tensor(Napi::Env env, Napi::Object exports) {
  exports.Set("fromTypedArray", Napi::Function::New(env, from_typed_array, "fromTypedArray"));
  exports.Set("readAsync", Napi::Function::New(env, read_async, "readAsync"));
  exports.Set("backwardAsync", Napi::Function::New(env, backward_async, "backwardAsync"));
}

}  // namespace prefix_rl
