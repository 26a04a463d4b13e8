// Loads the native addon (the binary loader.ts chooses: a source build, or a prebuilt one with its libtorch) and declares its whole raw surface:
// the handle classes (NativeTensor, CancelToken, NativeModel, NativeAdamW) and the functions (ops, objectives,
// models, optimizers, safetensors). Library code uses the typed wrappers in lib/tensor, lib/ops and lib/model; this
// file is the only place that sees the addon.
import { chooseAddon, loadChosen, type AddonChoice } from './loader.js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int32' | 'int64' | 'bool' | 'uint8';
/** meta: tensors with shapes and no data (shape checks; device tests without a GPU). Models live on cpu or cuda. */
export type DeviceName = 'cpu' | 'cuda' | `cuda:${number}` | 'meta';

/** What the addon accepts as one op argument. */
export type NativeOpArg = NativeTensor | NativeTensor[] | number | boolean | string | number[] | null | undefined;

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: string;
  readonly numel: number;
  readonly isDisposed: boolean;
  readonly requiresGrad: boolean;
  readonly grad: NativeTensor | null;
  setRequiresGrad(value: boolean): NativeTensor;
  zeroGrad(): void;
  backward(gradient?: NativeTensor): void;
  to(device: string | null, dtype: DType | null): NativeTensor;
  toTypedArray(): TypedArrayOf<DType>;
  item(): number;
  dispose(): void;
}

/** Sums gradients over the ranks while the backward runs (native/distributed.cc). */
export interface NativeGradientReducer {
  arm(cancel?: NativeCancelToken): Promise<void>;
  finish(cancel?: NativeCancelToken): Promise<{ buckets: number; startedDuringBackward: number }>;
  close(cancel?: NativeCancelToken): Promise<void>;
}

export interface NativeCancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

export interface NativeForwardOptions {
  checkpoint?: boolean;
  noGrad?: boolean;
  /** forward only: the LM head's positions [logitsStart, logitsStart + logitsLength). */
  logitsStart?: number;
  logitsLength?: number;
  /** tokenLogprobs only: through the fused LM head (default true). */
  fusedHead?: boolean;
}

export interface NativeSamplingOptions {
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  eosTokenIds?: number[];
  stopSequences?: number[][];
  topLogprobs?: number;
  onStep?: (tokens: number[], logprobs: number[], produced: number[]) => void;
}

/** CPU tensors: tokens/logprobs [B, N], lengths/finishReasons [B] (0 length, 1 eos, 2 stop), top* [B, N, K]. */
export interface NativeGeneration {
  tokens: NativeTensor;
  logprobs: NativeTensor;
  lengths: NativeTensor;
  finishReasons: NativeTensor;
  topTokens?: NativeTensor;
  topLogprobs?: NativeTensor;
}

/**
 * The decoder's settings (lib/model/config.ts's ModelConfig): the addon reads the keys of the field list in
 * native/model/decoder.h and names any that is missing or of the wrong type.
 */
export type NativeDecoderConfig = object;

export interface NativeLoraConfig {
  rank: number;
  alpha: number;
  rslora: boolean;
  targetModules: readonly string[];
}

export interface NativeModel {
  readonly dtype: DType;
  readonly parameterDtype: DType;
  readonly device: string;
  readonly isDisposed: boolean;
  forward(
    inputIds: NativeTensor,
    attentionMask: NativeTensor | null,
    options: NativeForwardOptions,
    cancel?: NativeCancelToken,
  ): Promise<NativeTensor>;
  tokenLogprobs(
    inputIds: NativeTensor,
    attentionMask: NativeTensor | null,
    options: NativeForwardOptions,
    cancel?: NativeCancelToken,
  ): Promise<NativeTensor>;
  headInput(
    inputIds: NativeTensor,
    attentionMask: NativeTensor | null,
    options: NativeForwardOptions,
    cancel?: NativeCancelToken,
  ): Promise<{ hidden: NativeTensor; weight: NativeTensor; loraHidden?: NativeTensor; loraWeight?: NativeTensor }>;
  generate(
    promptIds: NativeTensor,
    promptMask: NativeTensor | null,
    options: NativeSamplingOptions,
    cancel?: NativeCancelToken,
  ): Promise<NativeGeneration>;
  /** Every parameter by its Hugging Face name; the tensors share storage with the model. */
  parameters(): Record<string, NativeTensor>;
  /** The parameters holding a NaN or an infinity. */
  nonFiniteParameters(cancel?: NativeCancelToken): Promise<string[]>;
  /** The LoRA adapter's parameters by PEFT name (empty without one). */
  loraParameters(): Record<string, NativeTensor>;
  addLora(config: NativeLoraConfig, seed: number, cancel?: NativeCancelToken): Promise<void>;
  loadLora(config: NativeLoraConfig, files: string[], cancel?: NativeCancelToken): Promise<void>;
  mergeLora(cancel?: NativeCancelToken): Promise<void>;
  removeLora(cancel?: NativeCancelToken): Promise<void>;
  dispose(): void;
}

export interface NativeAdamW {
  step(lr: number, cancel?: NativeCancelToken): Promise<void>;
  zeroGrad(cancel?: NativeCancelToken): Promise<void>;
  state(cancel?: NativeCancelToken): Promise<NativeAdamWState>;
  loadState(state: NativeAdamWState, cancel?: NativeCancelToken): Promise<void>;
  readonly steps: number;
}

/** Per parameter (in the constructor's order) its moments and update count; and the number of step() calls. */
export interface NativeAdamWState {
  expAvg: NativeTensor[];
  expAvgSq: NativeTensor[];
  steps: number[];
  stepsTaken: number;
}

export interface NativeAdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface BuildInfo {
  torchVersion: string;
  buildType: string;
  torchLibDir: string;
  cudaCompiled: boolean;
  cudaKernels: boolean;
  napiVersion: number;
  /**
   * The process-group backends compiled in: 'gloo' when Gloo's headers were found at build time, 'nccl' too when
   * built against a CUDA libtorch with NCCL's header.
   */
  distributedBackends: string[];
  compiler: string;
  parallelInfo: string;
}

/** The CUDA caching allocator's counters for one device. */
export interface CudaMemory {
  allocatedBytes: number;
  /** Highest allocatedBytes since the last cudaResetPeakMemory. */
  peakAllocatedBytes: number;
  reservedBytes: number;
}

export interface CudaDeviceInfo {
  index: number;
  name: string;
  /** Compute capability, e.g. "9.0". */
  capability: string;
  totalMemoryBytes: number;
  freeMemoryBytes?: number;
  /** Whether the fused kernels have an image for this GPU (else CUDA tensors use ATen ops). */
  fusedKernels: boolean;
}

export interface RuntimeInfo {
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  /** Each GPU (listed by a CUDA build of the addon): name, compute capability, memory, and whether the fused kernels run on it. */
  cudaDevices: CudaDeviceInfo[];
  numThreads: number;
  hardwareConcurrency: number;
  /** The instruction set of the float32 row kernels: avx512, avx2 or scalar (PREFIX_RL_SIMD caps it). */
  simd: string;
  liveTensors: number;
  pendingJobs: number;
  /** The cache of large CPU output buffers the fused ops reuse (see releaseBufferCache). */
  bufferCache: { cachedBytes: number; limitBytes: number; hits: number; misses: number };
}

export type TypedArrayOf<D extends DType> = D extends 'float32' | 'bfloat16' | 'float16'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'int32'
      ? Int32Array
      : D extends 'int64'
        ? BigInt64Array
        : Uint8Array;

/** How CUDA tensors' collectives travel: gloo (staged through host memory) or nccl (on the device). */
export type DistributedBackend = 'gloo' | 'nccl';

export interface NativeAddon {
  NativeTensor: abstract new (...args: never[]) => NativeTensor;
  CancelToken: new () => NativeCancelToken;
  buildInfo(): BuildInfo;
  runtimeInfo(): RuntimeInfo;
  liveTensors(): number;
  setNumThreads(threads: number): void;
  /** Sets (value undefined: unsets) a variable of the process's own environment, which native switches read. */
  setEnv(name: string, value?: string): void;
  setBufferCacheLimit(bytes: number): void;
  releaseBufferCache(): void;
  listOps(): string[];
  op(name: string, args: NativeOpArg[]): NativeTensor[];
  opAsync(name: string, args: NativeOpArg[], cancel?: NativeCancelToken): Promise<NativeTensor[]>;
  fromTypedArray(data: ArrayBufferView, shape: number[], dtype: DType, device?: string): NativeTensor;
  readAsync(tensor: NativeTensor): Promise<TypedArrayOf<DType>>;
  backwardAsync(tensor: NativeTensor, gradient?: NativeTensor, cancel?: NativeCancelToken): Promise<void>;
  objective(name: string, inputs: Record<string, unknown>, cancel?: NativeCancelToken): Promise<Record<string, NativeTensor | number>>;
  listObjectives(): string[];
  // models (native/model/model_handle.cc)
  NativeModel: abstract new (...args: never[]) => NativeModel;
  loadModel(
    config: NativeDecoderConfig,
    files: string[],
    options: { dtype: DType; device: string; masterWeights: boolean },
    cancel?: NativeCancelToken,
  ): Promise<NativeModel>;
  initModel(
    config: NativeDecoderConfig,
    options: { dtype: DType; device: string; masterWeights: boolean; seed: number; initializerRange: number; paddingIdx: number },
    cancel?: NativeCancelToken,
  ): Promise<NativeModel>;
  // optimizers (native/model/optimizer_handle.cc)
  NativeAdamW: new (parameters: NativeTensor[], options: NativeAdamWOptions) => NativeAdamW;
  clipGradNorm(parameters: NativeTensor[], maxNorm: number, cancel?: NativeCancelToken): Promise<number>;
  // CUDA runtime controls (native/cuda_runtime.cc)
  cudaSynchronize(device?: string, cancel?: NativeCancelToken): Promise<void>;
  cudaMemory(device?: string): CudaMemory;
  cudaResetPeakMemory(device?: string): void;
  cudaEmptyCache(): void;
  cudaSetDevice(index: number, cancel?: NativeCancelToken): Promise<void>;
  // the process group of data-parallel training (native/distributed.cc); all but distInit/distDestroy need Gloo
  distInit(
    options: { rank: number; worldSize: number; masterAddr: string; masterPort: number; timeoutMs: number; backend?: DistributedBackend },
    cancel?: NativeCancelToken,
  ): Promise<void>;
  distDestroy(cancel?: NativeCancelToken): Promise<void>;
  distAllReduce?(tensors: NativeTensor[], op: string, bucketBytes?: number, cancel?: NativeCancelToken): Promise<void>;
  distBroadcast?(tensors: NativeTensor[], root: number, bucketBytes?: number, cancel?: NativeCancelToken): Promise<void>;
  distAllGather?(tensor: NativeTensor, cancel?: NativeCancelToken): Promise<NativeTensor[]>;
  distBarrier?(cancel?: NativeCancelToken): Promise<void>;
  NativeGradientReducer?: new (parameters: NativeTensor[], bucketBytes?: number) => NativeGradientReducer;
  // safetensors (native/model/safetensors_binding.cc)
  readSafetensors(path: string, cancel?: NativeCancelToken): Promise<{ tensors: Record<string, NativeTensor>; metadata: Record<string, string> }>;
  writeSafetensors(path: string, tensors: Record<string, NativeTensor>, metadata: Record<string, string>, cancel?: NativeCancelToken): Promise<void>;
}

let cached: { addon: NativeAddon; choice: AddonChoice } | undefined;

/** The loaded addon (loader.ts chooses the binary). Throws an Error with what was tried and the fixes when none loads. */
export function addon(): NativeAddon {
  return loaded().addon;
}

/** Which binary was loaded, and why (`prefix-rl env`). */
export function addonChoice(): AddonChoice {
  return loaded().choice;
}

function loaded(): { addon: NativeAddon; choice: AddonChoice } {
  if (cached) return cached;
  const choice = chooseAddon();
  try {
    cached = { addon: loadChosen<NativeAddon>(choice), choice };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const hint = /libtorch|libc10|\.so/.test(reason)
      ? 'The binary was built against a libtorch that is not where it was found at build time; rebuild with `npm run build:native`.'
      : 'Build it with `npm run build:native` (it finds or fetches libtorch; see `npm run libtorch`).';
    throw new Error(`prefix-rl: the native addon ${choice.binary} did not load (${reason.split('\n')[0]}). ${hint}`);
  }
  return cached;
}
