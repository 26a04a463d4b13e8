// Module entry: per-environment state, the compute thread, build/runtime info, and the export groups.
#include "addon.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <cstdlib>
#include <thread>

#include "cancel_token.h"
#include "common.h"
#include "ops/buffer_cache.h"
#include "ops/simd_kernels.h"
#include "tensor.h"

namespace prefix_rl {

AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

static int default_num_threads() {
  if (const char* value = std::getenv("PREFIX_RL_NUM_THREADS")) {
    int parsed = std::atoi(value);
    if (parsed > 0) return parsed;
  }
  return at::get_num_threads();
}

static Napi::Value build_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("torchVersion", TORCH_VERSION);
  out.Set("buildType", PREFIX_RL_BUILD_TYPE);
  out.Set("torchLibDir", PREFIX_RL_TORCH_LIB_DIR);
  out.Set("cudaCompiled", static_cast<bool>(PREFIX_RL_CUDA_COMPILED));
#ifdef PREFIX_RL_CUDA_KERNELS
  out.Set("cudaKernels", true);
#else
  out.Set("cudaKernels", false);
#endif
  Napi::Array backends = Napi::Array::New(env);
#ifdef PREFIX_RL_GLOO
  backends.Set(backends.Length(), "gloo");
#endif
#ifdef PREFIX_RL_NCCL
  backends.Set(backends.Length(), "nccl");
#endif
  out.Set("distributedBackends", backends);
  out.Set("napiVersion", NAPI_VERSION);
  out.Set("compiler", __VERSION__);
  out.Set("parallelInfo", at::get_parallel_info());
  return out;
}

static Napi::Value runtime_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("cudaAvailable", at::hasCUDA());
  int64_t devices = 0;
  if (at::hasCUDA()) {
    try {
      devices = at::detail::getCUDAHooks().deviceCount();
    } catch (...) {
      devices = 0;
    }
  }
  out.Set("cudaDeviceCount", Napi::Number::New(env, static_cast<double>(devices)));
  out.Set("cudaDevices", cuda_devices(env));
  out.Set("numThreads", addon_data(env).compute->num_threads());
  out.Set("hardwareConcurrency", static_cast<double>(std::thread::hardware_concurrency()));
  out.Set("simd", kernels::simd::kernels().isa);
  out.Set("liveTensors", static_cast<double>(TensorHandle::live_count()));
  out.Set("pendingJobs", addon_data(env).compute->pending());
  const BufferCacheStats cache = buffer_cache_stats();
  Napi::Object buffers = Napi::Object::New(env);
  buffers.Set("cachedBytes", static_cast<double>(cache.cached_bytes));
  buffers.Set("limitBytes", static_cast<double>(cache.limit_bytes));
  buffers.Set("hits", static_cast<double>(cache.hits));
  buffers.Set("misses", static_cast<double>(cache.misses));
  out.Set("bufferCache", buffers);
  return out;
}

static Napi::Value set_buffer_cache_limit_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const double bytes = arg_number(info[0], "bytes");
    if (!(bytes >= 0)) invalid_argument("bytes must be >= 0");
    // Infinity (no limit) would cast to an undefined int64 (0 here: the cache switched off); 2^62 bytes is no limit.
    set_buffer_cache_limit(bytes >= 0x1p62 ? (int64_t{1} << 62) : static_cast<int64_t>(bytes));
    return info.Env().Undefined();
  });
}

static Napi::Value live_tensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(TensorHandle::live_count()));
}

static Napi::Value set_num_threads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int64_t threads = arg_int(info[0], "threads");
    // Checked before narrowing to int: 2^32 would become 0, which libtorch refuses on the compute thread.
    if (threads < 1 || threads > 4096) invalid_argument("threads must be in [1, 4096]");
    addon_data(info.Env()).compute->set_num_threads(static_cast<int>(threads));
    return info.Env().Undefined();
  });
}

// setEnv(name, value?): sets (without a value: unsets) a variable of the process's own environment, which the
// native switches read (PREFIX_RL_HEAD_KERNELS, PREFIX_RL_HEAD_RECOMPUTE): for hosts whose process.env is a copy
// that never reaches it, as jest's sandbox is. Call it with no native work in flight (getenv is not synchronised).
static Napi::Value set_env(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const std::string name = arg_string(info[0], "name");
    if (name.empty() || name.find('=') != std::string::npos) invalid_argument("an environment variable's name is non-empty and has no '='");
    if (info[1].IsUndefined()) {
      unsetenv(name.c_str());
    } else {
      setenv(name.c_str(), arg_string(info[1], "value").c_str(), 1);
    }
    return info.Env().Undefined();
  });
}

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted by Node at environment teardown (joins the compute thread)
  Napi::Function tensor_class = TensorHandle::define_class(env);
  Napi::Function cancel_class = CancelToken::define_class(env);
  data->tensor_class = Napi::Persistent(tensor_class);
  data->cancel_token_class = Napi::Persistent(cancel_class);
  int threads = default_num_threads();
  at::set_num_threads(threads);
  data->compute = std::make_unique<ComputeThread>(env, threads);

  exports.Set("NativeTensor", tensor_class);
  exports.Set("CancelToken", cancel_class);
  exports.Set("buildInfo", Napi::Function::New(env, build_info, "buildInfo"));
  exports.Set("runtimeInfo", Napi::Function::New(env, runtime_info, "runtimeInfo"));
  exports.Set("liveTensors", Napi::Function::New(env, live_tensors, "liveTensors"));
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads, "setNumThreads"));
  exports.Set("setEnv", Napi::Function::New(env, set_env, "setEnv"));
  exports.Set("setBufferCacheLimit", Napi::Function::New(env, set_buffer_cache_limit_js, "setBufferCacheLimit"));
  exports.Set("releaseBufferCache", Napi::Function::New(
                                        env,
                                        [](const Napi::CallbackInfo& info) {
                                          release_buffer_cache();
                                          return info.Env().Undefined();
                                        },
                                        "releaseBufferCache"));
  register_tensor(env, exports);
  register_tensor_ops(env, exports);
  register_objectives(env, exports);
  register_model(env, exports);
  register_optimizer(env, exports);
  register_safetensors(env, exports);
  register_cuda(env, exports);
  register_distributed(env, exports);
  return exports;
}

}  // namespace prefix_rl

static Napi::Object InitPrefixRl(Napi::Env env, Napi::Object exports) { return prefix_rl::init(env, exports); }
NODE_API_MODULE(prefix_rl, InitPrefixRl)
