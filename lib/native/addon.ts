// Loads the native addon (build/Release, then prebuilds/ via node-gyp-build) and declares its raw surface.
// Library code uses the typed wrappers in lib/tensor and lib/ops; this file is the only place that sees the addon.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int32' | 'int64' | 'bool' | 'uint8';
export type DeviceName = 'cpu' | 'cuda' | `cuda:${number}`;

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

export interface NativeCancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

export interface BuildInfo {
  torchVersion: string;
  buildType: string;
  torchLibDir: string;
  cudaCompiled: boolean;
  cudaKernels: boolean;
  napiVersion: number;
  compiler: string;
  parallelInfo: string;
}

export interface RuntimeInfo {
  cudaAvailable: boolean;
  cudaDeviceCount: number;
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

export interface NativeAddon {
  NativeTensor: abstract new (...args: never[]) => NativeTensor;
  CancelToken: new () => NativeCancelToken;
  buildInfo(): BuildInfo;
  runtimeInfo(): RuntimeInfo;
  liveTensors(): number;
  setNumThreads(threads: number): void;
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
}

/** The repository (or installed package) root: two levels above lib/native, in source and in dist/. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  const require = createRequire(import.meta.url);
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = require(join(dir, 'package.json')) as { name?: string };
      if (pkg.name === 'prefix-rl') return dir;
    } catch {
      // not the root yet
    }
    dir = dirname(dir);
  }
  throw new Error('prefix-rl: cannot find the package root (package.json) above ' + fileURLToPath(import.meta.url));
}

let cached: NativeAddon | undefined;

/** The loaded addon. Throws an Error explaining how to build it when no binary loads. */
export function addon(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  try {
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    cached = load(root);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const hint = /libtorch|libc10|\.so/.test(reason)
      ? 'The binary was built against a libtorch that is not where it was found at build time; rebuild with `npm run build:native`.'
      : 'Build it with `npm run build:native` (it finds or fetches libtorch; see `npm run libtorch`).';
    throw new Error(`prefix-rl: the native addon did not load (${reason.split('\n')[0]}). ${hint}`);
  }
  return cached;
}
