// The CUDA runtime facts and controls JS needs around the compute: the GPUs (for `prefix-rl env`), synchronising a
// device (timing: kernels run asynchronously), and the caching allocator's memory counters (benchmarks, leak
// checks). Built against a CPU libtorch, the device list is empty and the controls answer ERR_CUDA_UNAVAILABLE.
#include "addon.h"
#include "async.h"
#include "common.h"

#ifdef PREFIX_RL_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>
#endif
#ifdef PREFIX_RL_CUDA_KERNELS
#include "cuda/kernels.h"
#endif

namespace prefix_rl {

namespace {

// The CUDA device a JS name ("cuda", "cuda:N") stands for; "cuda" is the current device.
int cuda_index(const Napi::Value& value) {
  const at::Device device = parse_device(value.IsUndefined() ? std::string("cuda") : arg_string(value, "device"));
  if (!device.is_cuda()) invalid_argument("expected a CUDA device (cuda or cuda:N), got " + device_name(device));
#ifdef PREFIX_RL_TORCH_CUDA
  if (!device.has_index()) {
    int current = 0;
    if (cudaGetDevice(&current) != cudaSuccess) throw Error(ErrorCode::Torch, "cudaGetDevice failed");
    return current;
  }
#endif
  return device.has_index() ? device.index() : 0;
}

#ifdef PREFIX_RL_TORCH_CUDA
void check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) {
    cudaGetLastError();
    throw Error(ErrorCode::Torch, std::string(what) + ": " + cudaGetErrorString(error));
  }
}
#else
[[noreturn]] void no_cuda() { throw Error(ErrorCode::CudaUnavailable, "this addon was built against a CPU-only libtorch"); }
#endif

// cudaSynchronize(device?, cancel?) → Promise<void>: waits on the compute thread until the device's queued work is
// done, so the event loop stays free.
Napi::Value cuda_synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int index = cuda_index(info[0]);
    return run_async(info.Env(), info[1], [index]() {
#ifdef PREFIX_RL_TORCH_CUDA
      c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(index));
      check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
#else
      (void)index;
      no_cuda();
#endif
    });
  });
}

// cudaMemory(device?) → {allocatedBytes, peakAllocatedBytes, reservedBytes}: the caching allocator's counters
// (peak since the last cudaResetPeakMemory).
Napi::Value cuda_memory(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int index = cuda_index(info[0]);
#ifdef PREFIX_RL_TORCH_CUDA
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(index));
    const size_t all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("allocatedBytes", static_cast<double>(stats.allocated_bytes[all].current));
    out.Set("peakAllocatedBytes", static_cast<double>(stats.allocated_bytes[all].peak));
    out.Set("reservedBytes", static_cast<double>(stats.reserved_bytes[all].current));
    return out;
#else
    (void)index;
    no_cuda();
#endif
  });
}

// cudaResetPeakMemory(device?): starts a new peak; cudaEmptyCache(): returns cached blocks to the driver.
Napi::Value cuda_reset_peak_memory(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int index = cuda_index(info[0]);
#ifdef PREFIX_RL_TORCH_CUDA
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(index));
    return info.Env().Undefined();
#else
    (void)index;
    no_cuda();
#endif
  });
}

// cudaSetDevice(index, cancel?) → Promise<void>: makes cuda:index what "cuda" without an index means, and the compute
// thread's current device (a data-parallel rank binds its LOCAL_RANK's GPU).
Napi::Value cuda_set_device(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int64_t index = arg_int(info[0], "index");
    if (index < 0) invalid_argument("a CUDA device index is >= 0");
    return run_async(info.Env(), info[1], [index]() {
#ifdef PREFIX_RL_TORCH_CUDA
      // No driver or no GPU: cudaGetDeviceCount fails, which is no device (a CUDA build on a machine without one).
      int count = 0;
      if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        count = 0;
      }
      if (count == 0) throw Error(ErrorCode::CudaUnavailable, "CUDA is not available: no CUDA device is visible (no driver, or no GPU)");
      if (index >= count)
        throw Error(ErrorCode::CudaUnavailable,
                    "cuda:" + std::to_string(index) + " does not exist: " + std::to_string(count) + " CUDA device(s) visible");
      // c10's own setter: it also clears the thread's lazily pending device (CUDAGuard's MaybeSetDevice), which
      // c10::cuda::current_device() would otherwise still answer.
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
      set_default_cuda_index(static_cast<int>(index));
#else
      (void)index;
      no_cuda();
#endif
    });
  });
}

Napi::Value cuda_empty_cache(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
#ifdef PREFIX_RL_TORCH_CUDA
    if (at::hasCUDA()) c10::cuda::CUDACachingAllocator::emptyCache();
    return info.Env().Undefined();
#else
    no_cuda();
#endif
  });
}

}  // namespace

Napi::Array cuda_devices(Napi::Env env) {
  Napi::Array gpus = Napi::Array::New(env);
#ifdef PREFIX_RL_TORCH_CUDA
  int count = 0;
  if (!at::hasCUDA() || cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return gpus;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    Napi::Object gpu = Napi::Object::New(env);
    gpu.Set("index", i);
    gpu.Set("name", properties.name);
    gpu.Set("capability", std::to_string(properties.major) + "." + std::to_string(properties.minor));
    gpu.Set("totalMemoryBytes", static_cast<double>(properties.totalGlobalMem));
    size_t free_bytes = 0, total_bytes = 0;
    int previous = 0;
    if (cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      gpu.Set("freeMemoryBytes", static_cast<double>(free_bytes));
    }
    cudaSetDevice(previous);
    cudaGetLastError();
#ifdef PREFIX_RL_CUDA_KERNELS
    gpu.Set("fusedKernels", cuda::kernels_available(i));
#else
    gpu.Set("fusedKernels", false);
#endif
    gpus.Set(gpus.Length(), gpu);
  }
#endif
  return gpus;
}

void register_cuda(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaSynchronize", Napi::Function::New(env, cuda_synchronize, "cudaSynchronize"));
  exports.Set("cudaMemory", Napi::Function::New(env, cuda_memory, "cudaMemory"));
  exports.Set("cudaResetPeakMemory", Napi::Function::New(env, cuda_reset_peak_memory, "cudaResetPeakMemory"));
  exports.Set("cudaEmptyCache", Napi::Function::New(env, cuda_empty_cache, "cudaEmptyCache"));
  exports.Set("cudaSetDevice", Napi::Function::New(env, cuda_set_device, "cudaSetDevice"));
}

}  // namespace prefix_rl
