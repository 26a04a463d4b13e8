// Tensor: the TypeScript face of a libtorch tensor. Synchronous methods run on the JS thread and suit small
// tensors and views; `*Async` methods and `data()` run on the native compute thread and return Promises.
import { addon, type DType, type DeviceName, type NativeOpArg, type NativeTensor, type TypedArrayOf } from '../native/addon.js';
import { withCancel } from './cancel.js';
import { track, untrack } from './scope.js';

export type { DType, DeviceName } from '../native/addon.js';

export interface TensorOptions {
  dtype?: DType;
  device?: DeviceName;
  requiresGrad?: boolean;
}

export interface AsyncOptions {
  /** Aborts the operation: before it starts always, while it runs where the op checks (the fused objectives do). */
  signal?: AbortSignal;
}

type OpArg = Tensor | Tensor[] | number | boolean | string | number[] | null | undefined;
type AnyTypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;

function toNativeArg(arg: OpArg): NativeOpArg {
  if (arg instanceof Tensor) return arg.native;
  if (Array.isArray(arg) && arg.length > 0 && arg[0] instanceof Tensor) return (arg as Tensor[]).map((t) => t.native);
  return arg as NativeOpArg;
}

/** The natural dtype of a typed array, used when `from` is given no dtype. */
function dtypeOfArray(data: AnyTypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Uint8Array) return 'uint8';
  throw new TypeError('a Uint16Array holds raw bfloat16/float16 bits: pass dtype "bfloat16" or "float16"');
}

/** Converts plain JS numbers to the typed array that carries `dtype`. */
/** Integer ranges of the integer dtypes Tensor.from fills from JS values. */
const INTEGER_RANGES: Partial<Record<DType, [bigint, bigint]>> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint8: [0n, 255n],
  bool: [0n, 1n],
};

/**
 * The values as the typed array of `dtype`. A value that is not a number, bigint or boolean is refused, and so is
 * one an integer dtype cannot hold exactly (2^40 in int32, 1.5 in int64, a number past 2^53 in int64 — pass a
 * BigInt), instead of wrapping or truncating silently.
 */
function arrayFor(values: ArrayLike<number | bigint | boolean>, dtype: DType): AnyTypedArray {
  const numbers = Array.from(values, (v, i) => {
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new TypeError(`Tensor.from: value ${i} is a ${typeof v} (${String(v)}), not a number`);
    return v;
  });
  const range = INTEGER_RANGES[dtype];
  if (range) {
    numbers.forEach((v, i) => {
      if (typeof v === 'number' && !Number.isSafeInteger(v)) {
        throw new RangeError(
          `Tensor.from: value ${i} (${v}) is not ${Number.isInteger(v) ? 'a safe integer (pass a BigInt)' : 'an integer'}, as ${dtype} needs`,
        );
      }
      const big = BigInt(v);
      if (big < range[0] || big > range[1]) throw new RangeError(`Tensor.from: value ${i} (${v}) does not fit ${dtype} [${range[0]}, ${range[1]}]`);
    });
  }
  switch (dtype) {
    case 'float64':
      return Float64Array.from(numbers, Number);
    case 'int32':
      return Int32Array.from(numbers, Number);
    case 'int64':
      return BigInt64Array.from(numbers, (v) => BigInt(v));
    case 'bool':
    case 'uint8':
      return Uint8Array.from(numbers, Number);
    default:
      return Float32Array.from(numbers, Number);
  }
}

function inferShape(values: unknown): number[] {
  const shape: number[] = [];
  let level: unknown = values;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  return shape;
}

export class Tensor {
  /** The addon handle; library code passes it to native calls. */
  readonly native: NativeTensor;

  /** Wraps a handle returned by the addon (the new Tensor joins the current `tidy` scope). */
  static wrap(native: NativeTensor): Tensor {
    return new Tensor(native);
  }

  private constructor(native: NativeTensor) {
    this.native = native;
    track(this);
  }

  // ---- creation ----

  /**
   * Copies `data` into a new tensor. A typed array keeps its dtype unless `dtype` says otherwise (bfloat16/float16
   * from Float32Array values or Uint16Array bits); nested number arrays infer their shape.
   */
  static from(data: AnyTypedArray | ArrayLike<number | bigint | boolean> | unknown[], shape?: number[], options: TensorOptions = {}): Tensor {
    let flat: AnyTypedArray;
    let dtype = options.dtype;
    if (ArrayBuffer.isView(data)) {
      flat = data as AnyTypedArray;
      dtype ??= dtypeOfArray(flat);
      shape ??= [flat.length];
    } else {
      shape ??= inferShape(data);
      const values = (data as unknown[]).flat(Infinity) as (number | bigint | boolean)[];
      dtype ??=
        values.length > 0 && typeof values[0] === 'bigint' ? 'int64' : values.length > 0 && typeof values[0] === 'boolean' ? 'bool' : 'float32';
      flat = arrayFor(values, dtype === 'bfloat16' || dtype === 'float16' ? 'float32' : dtype);
    }
    const tensor = new Tensor(addon().fromTypedArray(flat, shape, dtype, options.device));
    if (options.requiresGrad) tensor.native.setRequiresGrad(true);
    return tensor;
  }

  private static factory(name: string, args: OpArg[], options: TensorOptions): Tensor {
    const tensor = Tensor.run(name, [...args, options.dtype ?? null, options.device ?? null]);
    if (options.requiresGrad) tensor.native.setRequiresGrad(true);
    return tensor;
  }

  static zeros(shape: number[], options: TensorOptions = {}): Tensor {
    return Tensor.factory('zeros', [shape], options);
  }
  static ones(shape: number[], options: TensorOptions = {}): Tensor {
    return Tensor.factory('ones', [shape], options);
  }
  static full(shape: number[], value: number, options: TensorOptions = {}): Tensor {
    return Tensor.factory('full', [shape, value], options);
  }
  static arange(start: number, end: number, step = 1, options: TensorOptions = {}): Tensor {
    return Tensor.factory('arange', [start, end, step], { dtype: 'int64', ...options });
  }
  /** Uniform [0, 1) samples from a CPU generator seeded with `seed` (same values on every device). */
  static rand(shape: number[], seed: number, options: TensorOptions = {}): Tensor {
    return Tensor.factory('rand', [shape, seed], options);
  }
  /** Standard normal samples from a CPU generator seeded with `seed`. */
  static randn(shape: number[], seed: number, options: TensorOptions = {}): Tensor {
    return Tensor.factory('randn', [shape, seed], options);
  }
  static cat(tensors: Tensor[], dim = 0): Tensor {
    return Tensor.run('cat', [tensors, dim]);
  }
  static stack(tensors: Tensor[], dim = 0): Tensor {
    return Tensor.run('stack', [tensors, dim]);
  }
  static where(condition: Tensor, a: Tensor, b: Tensor): Tensor {
    return Tensor.run('where', [condition, a, b]);
  }

  /** Runs a named op of the native table synchronously and returns its tensors. */
  static runAll(name: string, args: OpArg[]): Tensor[] {
    return addon()
      .op(name, args.map(toNativeArg))
      .map((t) => new Tensor(t));
  }
  static run(name: string, args: OpArg[]): Tensor {
    return Tensor.runAll(name, args)[0];
  }
  /** Runs a named op on the compute thread. */
  static async runAsync(name: string, args: OpArg[], options: AsyncOptions = {}): Promise<Tensor[]> {
    const natives = args.map(toNativeArg);
    const result = await withCancel(options.signal, (token) => addon().opAsync(name, natives, token));
    return result.map((t) => new Tensor(t));
  }

  // ---- metadata ----

  get shape(): number[] {
    return this.native.shape;
  }
  get dtype(): DType {
    return this.native.dtype;
  }
  get device(): string {
    return this.native.device;
  }
  get numel(): number {
    return this.native.numel;
  }
  get isDisposed(): boolean {
    return this.native.isDisposed;
  }
  get requiresGrad(): boolean {
    return this.native.requiresGrad;
  }
  set requiresGrad(value: boolean) {
    this.native.setRequiresGrad(value);
  }

  // ---- memory ----

  /** Frees the tensor now (idempotent). Native work already holding it keeps its own reference. */
  dispose(): void {
    this.native.dispose();
  }
  /** Keeps this tensor alive past the enclosing `tidy` scopes; the caller disposes it. */
  keep(): this {
    untrack(this);
    return this;
  }

  // ---- data ----

  /** A copy of the values (synchronous; bf16/fp16 read as float32, int64 as BigInt64Array, bool as Uint8Array). */
  toArray(): TypedArrayOf<DType> {
    return this.native.toTypedArray();
  }
  /** Like toArray, but the copy (and any device sync) runs on the compute thread. */
  data(): Promise<TypedArrayOf<DType>> {
    return addon().readAsync(this.native);
  }
  /** The values as a flat array of JS numbers (int64 beyond 2^53 loses precision: use toArray for those). */
  toNumbers(): number[] {
    return Array.from(this.toArray() as ArrayLike<number | bigint>, Number);
  }
  /** The values as nested JS arrays of numbers. */
  toNested(): unknown {
    const flat = this.toNumbers();
    const build = (dims: number[], offset: number): unknown => {
      if (dims.length === 0) return flat[offset];
      const [size, ...rest] = dims;
      const stride = rest.reduce((a, b) => a * b, 1);
      return Array.from({ length: size }, (_, i) => build(rest, offset + i * stride));
    };
    return build(this.shape, 0);
  }
  item(): number {
    return this.native.item();
  }
  to(deviceOrDtype: DeviceName | DType, dtype?: DType): Tensor {
    const isDtype = (s: string): s is DType => !s.startsWith('cuda') && s !== 'cpu';
    if (isDtype(deviceOrDtype)) return new Tensor(this.native.to(null, deviceOrDtype));
    return new Tensor(this.native.to(deviceOrDtype, dtype ?? null));
  }

  // ---- autograd ----

  get grad(): Tensor | null {
    const grad = this.native.grad;
    return grad ? new Tensor(grad) : null;
  }
  zeroGrad(): void {
    this.native.zeroGrad();
  }
  backward(gradient?: Tensor): void {
    this.native.backward(gradient?.native);
  }
  /** backward() on the compute thread: for large graphs, keeps the event loop free. */
  backwardAsync(gradient?: Tensor, options: AsyncOptions = {}): Promise<void> {
    return withCancel(options.signal, (token) => addon().backwardAsync(this.native, gradient?.native, token));
  }
  detach(): Tensor {
    return Tensor.run('detach', [this]);
  }

  // ---- ops (a second operand may be a Tensor or a number) ----

  add(other: Tensor | number): Tensor {
    return Tensor.run('add', [this, other]);
  }
  sub(other: Tensor | number): Tensor {
    return Tensor.run('sub', [this, other]);
  }
  mul(other: Tensor | number): Tensor {
    return Tensor.run('mul', [this, other]);
  }
  div(other: Tensor | number): Tensor {
    return Tensor.run('div', [this, other]);
  }
  pow(other: Tensor | number): Tensor {
    return Tensor.run('pow', [this, other]);
  }
  maximum(other: Tensor | number): Tensor {
    return Tensor.run('maximum', [this, other]);
  }
  minimum(other: Tensor | number): Tensor {
    return Tensor.run('minimum', [this, other]);
  }
  eq(other: Tensor | number): Tensor {
    return Tensor.run('eq', [this, other]);
  }
  lt(other: Tensor | number): Tensor {
    return Tensor.run('lt', [this, other]);
  }
  gt(other: Tensor | number): Tensor {
    return Tensor.run('gt', [this, other]);
  }
  neg(): Tensor {
    return Tensor.run('neg', [this]);
  }
  exp(): Tensor {
    return Tensor.run('exp', [this]);
  }
  log(): Tensor {
    return Tensor.run('log', [this]);
  }
  sqrt(): Tensor {
    return Tensor.run('sqrt', [this]);
  }
  abs(): Tensor {
    return Tensor.run('abs', [this]);
  }
  sigmoid(): Tensor {
    return Tensor.run('sigmoid', [this]);
  }
  logSigmoid(): Tensor {
    return Tensor.run('logsigmoid', [this]);
  }
  tanh(): Tensor {
    return Tensor.run('tanh', [this]);
  }
  relu(): Tensor {
    return Tensor.run('relu', [this]);
  }
  isnan(): Tensor {
    return Tensor.run('isnan', [this]);
  }
  clone(): Tensor {
    return Tensor.run('clone', [this]);
  }
  contiguous(): Tensor {
    return Tensor.run('contiguous', [this]);
  }
  sum(dims?: number | number[], keepdim = false): Tensor {
    return Tensor.run('sum', [this, dims ?? null, keepdim]);
  }
  mean(dims?: number | number[], keepdim = false): Tensor {
    return Tensor.run('mean', [this, dims ?? null, keepdim]);
  }
  /** Max over everything, or [values, indices] along `dim`. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): [Tensor, Tensor];
  max(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    if (dim === undefined) return Tensor.run('max', [this]);
    const [values, indices] = Tensor.runAll('max', [this, dim, keepdim]);
    return [values, indices];
  }
  argmax(dim: number, keepdim = false): Tensor {
    return Tensor.run('argmax', [this, dim, keepdim]);
  }
  logsumexp(dims: number | number[], keepdim = false): Tensor {
    return Tensor.run('logsumexp', [this, dims, keepdim]);
  }
  softmax(dim: number): Tensor {
    return Tensor.run('softmax', [this, dim]);
  }
  logSoftmax(dim: number): Tensor {
    return Tensor.run('logSoftmax', [this, dim]);
  }
  cumsum(dim: number): Tensor {
    return Tensor.run('cumsum', [this, dim]);
  }
  topk(k: number, dim = -1): [Tensor, Tensor] {
    const [values, indices] = Tensor.runAll('topk', [this, k, dim]);
    return [values, indices];
  }
  matmul(other: Tensor): Tensor {
    return Tensor.run('matmul', [this, other]);
  }
  /**
   * this · weightᵀ + bias for this [..., K], weight [N, K], bias [N]: torch's linear, with a skinny kernel for float32
   * CPU inputs of at most 16 rows when no gradient is recorded (the shape of a decoding step).
   */
  linear(weight: Tensor, bias?: Tensor): Tensor {
    return Tensor.run('linear', bias ? [this, weight, bias] : [this, weight]);
  }
  async matmulAsync(other: Tensor, options: AsyncOptions = {}): Promise<Tensor> {
    return (await Tensor.runAsync('matmul', [this, other], options))[0];
  }
  gather(dim: number, index: Tensor): Tensor {
    return Tensor.run('gather', [this, dim, index]);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return Tensor.run('indexSelect', [this, dim, index]);
  }
  /** The slice at `index` along `dim` (throws on an out-of-range index). */
  select(dim: number, index: number): Tensor {
    return Tensor.run('select', [this, dim, index]);
  }
  slice(dim: number, start = 0, end?: number, step = 1): Tensor {
    return Tensor.run('slice', [this, dim, start, end ?? null, step]);
  }
  reshape(shape: number[]): Tensor {
    return Tensor.run('reshape', [this, shape]);
  }
  transpose(dim0: number, dim1: number): Tensor {
    return Tensor.run('transpose', [this, dim0, dim1]);
  }
  permute(dims: number[]): Tensor {
    return Tensor.run('permute', [this, dims]);
  }
  squeeze(dim?: number): Tensor {
    return Tensor.run('squeeze', [this, dim ?? null]);
  }
  unsqueeze(dim: number): Tensor {
    return Tensor.run('unsqueeze', [this, dim]);
  }

  toString(): string {
    return this.isDisposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }
}

/** Tensors alive now in this process (not disposed, not garbage-collected): the leak check. */
export function liveTensors(): number {
  return addon().liveTensors();
}
